#!/bin/bash
# The learning curve's model half on the GPU machine (see bench_quality_curve.py for the other half):
# for each size, generate the logs, build the window-start and query-time samples with the pandas reference,
# then train and score the small config (both history modes) and the spec's config (window start) for
# EPOCHS epochs, the eval AUC recorded after each. Rows go to $OUT/curve_*.json, fingerprints to $OUT/prep.log.
# The GPU machine has no pyspark: the contextual id tables come from a local `bench_quality_curve.py prepare`
# (its work dir's contextual.parquet), copied to .qdata/curve_ctx/u<users>.parquet and carried along.
#   bash benchmarks/run_quality_curve_gpu.sh "3000 12000 30000" 3
#   CONFIGS=small VARIANTS="base no_user_id no_id_bias" bash benchmarks/run_quality_curve_gpu.sh 30000 3
set -u
SIZES=${1:-"3000 12000 30000"}; EPOCHS=${2:-3}; W=${WORK:-/tmp/curve}
C=benchmarks/bench_quality_curve.py; D=benchmarks/bench_quality_diagnose.py
mkdir -p $W
sed 's/max_seq_len: 320/max_seq_len: 336/; s/^\(  max_candidates: 64\)$/\1\n  history_mode: QUERY_TIME/' \
  configs/small_cpu.config > $W/small_qt.config
grep -q "history_mode: QUERY_TIME" $W/small_qt.config || { echo "QT config edit failed"; exit 1; }
CONFIGS=${CONFIGS:-"small spec"}; DEVICE=${DEVICE:-cuda}; VARIANTS=${VARIANTS:-base}  # bench_quality_diagnose variants
train() {  # size mode config-name config-file work-dir
  python $D --config $4 --work-dir $5 --window 2022-04-15 --train-windows 3 --epochs $EPOCHS --device $DEVICE \
    --variants $VARIANTS --jobs $(echo $VARIANTS | wc -w) \
    --label "curve users=$1 $2 $3" --out $OUT/curve_u$1_$2_$3.json > $OUT/train_u$1_$2_$3.log 2>&1
}
for u in $SIZES; do
  (
    python $C prepare --users $u --work $W/u$u --builder reference --jobs 4 --contextual .qdata/curve_ctx/u$u.parquet >> $OUT/prep.log 2>&1
    mkdir -p $W/u${u}qt && ln -sfn $W/u$u/raw $W/u${u}qt/raw
    (python $C prepare --users $u --work $W/u${u}qt --config $W/small_qt.config --builder reference --jobs 4 --contextual .qdata/curve_ctx/u$u.parquet \
       >> $OUT/prep.log 2>&1 && train $u query_time small $W/small_qt.config $W/u${u}qt) &
    for cfg in $CONFIGS; do
      f=configs/small_cpu.config; [ $cfg = spec ] && f=configs/dlrm_hstu_kuairand.config
      train $u window_start $cfg $f $W/u$u &
    done
    wait
  ) &
done
wait
