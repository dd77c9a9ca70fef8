#!/bin/bash
# The learning curve's model half on the GPU machine (see bench_quality_curve.py for the other half):
# for each size, generate the logs, build each config's samples with the pandas reference, then train and
# score every config for EPOCHS epochs, the eval AUC recorded after each. Configs (CONFIGS):
#   small     configs/small_cpu.config, window start
#   spec      configs/dlrm_hstu_kuairand.config, on small's window-start samples
#   small_qt  small_cpu.config at query time (max_seq_len 336 to fit the window's events)
#   demo      configs/demo.config: query time with the video's tag
# Rows go to $OUT/curve_*.json, fingerprints to $OUT/prep.log.
# The GPU machine has no pyspark: the contextual id tables come from a local `bench_quality_curve.py prepare`
# (its work dir's contextual.parquet), copied to .qdata/curve_ctx/u<users>.parquet and carried along.
#   bash benchmarks/run_quality_curve_gpu.sh "3000 12000 30000" 3
#   CONFIGS=demo VARIANTS="base seed=1" bash benchmarks/run_quality_curve_gpu.sh 30000 3
set -u
SIZES=${1:-"3000 12000 30000"}; EPOCHS=${2:-3}; W=${WORK:-/tmp/curve}
C=benchmarks/bench_quality_curve.py; D=benchmarks/bench_quality_diagnose.py
mkdir -p $W
sed 's/max_seq_len: 320/max_seq_len: 336/; s/^\(  max_candidates: 64\)$/\1\n  history_mode: QUERY_TIME/' \
  configs/small_cpu.config > $W/small_qt.config
grep -q "history_mode: QUERY_TIME" $W/small_qt.config || { echo "QT config edit failed"; exit 1; }
CONFIGS=${CONFIGS:-"small spec small_qt"}; DEVICE=${DEVICE:-cuda}; VARIANTS=${VARIANTS:-base}  # diagnose variants
config_file() {
  case $1 in
    small) echo configs/small_cpu.config ;; spec) echo configs/dlrm_hstu_kuairand.config ;;
    small_qt) echo $W/small_qt.config ;; demo) echo configs/demo.config ;;
    *) echo "unknown config $1" >&2; exit 1 ;;
  esac
}
train() {  # size config-name samples-dir
  local mode=window_start; [ $2 = small_qt ] && mode=query_time; [ $2 = demo ] && mode=query_time_tag
  python $D --config $(config_file $2) --work-dir $3 --window 2022-04-15 --train-windows 3 --epochs $EPOCHS \
    --device $DEVICE --variants $VARIANTS --jobs $(echo $VARIANTS | wc -w) \
    --label "curve users=$1 $mode $2" --out $OUT/curve_u$1_${mode}_$2.json > $OUT/train_u$1_${mode}_$2.log 2>&1
}
prepare() {  # size samples-dir config-file; the generator is deterministic, so each dir makes its own logs
  python $C prepare --users $1 --work $2 --config $3 --builder reference --jobs 4 \
    --contextual .qdata/curve_ctx/u$1.parquet >> $OUT/prep.log 2>&1
}
for u in $SIZES; do
  (
    for cfg in small_qt demo; do
      [[ " $CONFIGS " == *" $cfg "* ]] && (prepare $u $W/u${u}_$cfg $(config_file $cfg) && train $u $cfg $W/u${u}_$cfg) &
    done
    if [[ " $CONFIGS " == *" small "* || " $CONFIGS " == *" spec "* ]]; then
      prepare $u $W/u$u configs/small_cpu.config
      for cfg in small spec; do [[ " $CONFIGS " == *" $cfg "* ]] && train $u $cfg $W/u$u & done
    fi
    wait
  ) &
done
wait
