"""The Spark session factory and the few file-system operations the sample job needs.

Local mode by default (``local[*]`` bound to 127.0.0.1, UTC session time zone, a few shuffle partitions); under
``spark-submit`` the session that spark-submit configured (master, memory) is used unchanged, so the same code
runs on a cluster. File operations go through Hadoop's ``FileSystem``, so every path may be a local path or any
URI Spark reads and writes (``file:``, ``hdfs:``, ``s3a:``).
"""

from __future__ import annotations

import logging
import os
import uuid

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

LOCAL_IP = "127.0.0.1"


def _under_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands the Python driver its gateway port.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(*, master: str = "local[*]", driver_memory: str = "4g", app_name: str = "hstu-samples",
              shuffle_partitions: int = 8, ui: bool = True) -> SparkSession:
    """Returns the active Spark session, or starts one configured for this pipeline.

    Args:
        master: Spark master URL; ignored under spark-submit (its ``--master`` wins).
        driver_memory: JVM heap of the driver (in local mode the executors live in it too).
        shuffle_partitions: ``spark.sql.shuffle.partitions``; small on one machine, raise it on a cluster.
        ui: the Spark web UI (off in tests).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(app_name)
    if not _under_spark_submit():
        os.environ.setdefault("SPARK_LOCAL_IP", LOCAL_IP)
        builder = (builder.master(master)
                   .config("spark.driver.memory", driver_memory)
                   .config("spark.driver.host", LOCAL_IP)
                   .config("spark.driver.bindAddress", LOCAL_IP)
                   .config("spark.ui.enabled", str(ui).lower())
                   .config("spark.ui.showConsoleProgress", str(ui).lower())
                   .config("spark.sql.shuffle.partitions", str(shuffle_partitions)))
    spark = (builder
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
             # Lists stay typed: keep Parquet's standard 3-level list layout for pyarrow/torch readers.
             .config("spark.sql.parquet.writeLegacyFormat", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session: master=%s", spark.sparkContext.master)
    return spark


class HadoopFs:
    """Small file-system helper over Hadoop's FileSystem (local paths and URIs alike)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _path(self, uri: str):
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path, path.getFileSystem(self._conf)

    def exists(self, uri: str) -> bool:
        path, fs = self._path(uri)
        return bool(fs.exists(path))

    def list_dirs(self, uri: str) -> list[str]:
        """Names of the sub-folders of ``uri`` (empty when it does not exist)."""
        path, fs = self._path(uri)
        if not fs.exists(path):
            return []
        return sorted(s.getPath().getName() for s in fs.listStatus(path) if s.isDirectory())

    def list_files(self, uri: str) -> list[str]:
        """Full URIs of the data files in folder ``uri`` (names starting with ``_`` or ``.`` are skipped)."""
        path, fs = self._path(uri)
        if not fs.exists(path):
            return []
        out = []
        for s in fs.listStatus(path):
            name = s.getPath().getName()
            if s.isFile() and not name.startswith(("_", ".")) and s.getLen() > 0:
                out.append(s.getPath().toString())
        return sorted(out)

    def first_line(self, uri: str) -> str:
        """The first line of a (possibly compressed) text file."""
        path, fs = self._path(uri)
        stream = fs.open(path)
        codec = self._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(self._conf).getCodec(path)
        if codec is not None:
            stream = codec.createInputStream(stream)
        reader = self._jvm.java.io.BufferedReader(self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
        try:
            return reader.readLine() or ""
        finally:
            reader.close()

    def read_text(self, uri: str) -> str | None:
        """The whole file as text, or None when it does not exist."""
        path, fs = self._path(uri)
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            data = self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
        finally:
            stream.close()
        return bytes(data).decode("utf-8")

    def write_text(self, uri: str, text: str) -> None:
        """Writes ``text`` to a temporary sibling, then renames it over ``uri`` (readers see old or new)."""
        path, fs = self._path(uri)
        tmp = self._jvm.org.apache.hadoop.fs.Path(path.getParent(), f"_tmp-{uuid.uuid4().hex}-{path.getName()}")
        out = fs.create(tmp, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        if fs.exists(path):
            fs.delete(path, False)
        if not fs.rename(tmp, path):
            raise OSError(f"could not rename {tmp.toString()} to {uri}")

    def delete(self, uri: str) -> None:
        path, fs = self._path(uri)
        if fs.exists(path):
            fs.delete(path, True)

    def replace_dir(self, tmp_uri: str, final_uri: str) -> None:
        """Moves folder ``tmp_uri`` to ``final_uri``, replacing what was there.

        The old folder is first renamed aside, so a reader sees the old partition, then for a moment none, then
        the new one; never a half-written one.
        """
        final, fs = self._path(final_uri)
        tmp = self._jvm.org.apache.hadoop.fs.Path(tmp_uri)
        old = self._jvm.org.apache.hadoop.fs.Path(final.getParent(), f"_old-{uuid.uuid4().hex}-{final.getName()}")
        had_old = bool(fs.exists(final))
        if had_old and not fs.rename(final, old):
            raise OSError(f"could not move the old partition {final_uri} aside")
        if not fs.rename(tmp, final):
            raise OSError(f"could not rename {tmp_uri} to {final_uri}")
        if had_old:
            fs.delete(old, True)
