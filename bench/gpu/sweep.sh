#!/usr/bin/env bash
# On a lent GPU machine (the device tool), the second of two calls: join the GGUF's parts, convert it, and run
# bench/choice_sweep.py's variants ($VARIANTS) within $BUDGET seconds; answers come back as $OUT/ans.tgz.
# Call 1 (carry the first part and the wheels): mkdir -p /tmp/m && cp PART1 /tmp/m/part00 && python3 -m pip install
#   -q --no-index --no-deps --target /tmp/site WHEELS/*.whl   (pydantic, pydantic_core, annotated_types,
#   typing_inspection, loguru, gguf for Python 3.12). Call 2 within 30 s (the machine stays warm that long):
#   PART2=... PREP=... VARIANTS="default w0.5" bash bench/gpu/sweep.sh
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p /tmp/site/datasets && echo 'def disable_progress_bars(): pass' > /tmp/site/datasets/__init__.py  # not there
cat /tmp/m/part00 "$PART2" > /tmp/m/model.gguf && md5sum /tmp/m/model.gguf
python3 bench/gpu/convert.py "$PREP/tok" 2>&1 | tail -2 | tee "$OUT/convert.log"
mkdir -p /tmp/ans
timeout "${LIMIT:-480}" python3 bench/choice_sweep.py run --dir "$PREP" --model /tmp/hf --out /tmp/ans \
    --budget-s "${BUDGET:-330}" $VARIANTS > "$OUT/run.log" 2>&1 &
P=$!
while kill -0 $P 2>/dev/null; do sleep 10; tar czf "$OUT/ans.tgz" -C /tmp ans; done
tar czf "$OUT/ans.tgz" -C /tmp ans
grep -v "Loading weights" "$OUT/run.log" | tail -30
