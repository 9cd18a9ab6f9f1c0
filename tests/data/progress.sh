#!/bin/sh
# A configured job type for the tests: reads its params from standard
# input, reports four steps of progress and prints a result that echoes
# what it was given.
set -eu
params=$(cat)
for i in 1 2 3 4; do
  echo "progress $i/4 step $i of 4"
  sleep 0.1
done
echo "message almost done"
echo "some other output that is neither progress nor a result"
printf 'result {"params":%s,"job":"%s","attempt":%s,"type":"%s"}\n' \
  "$params" "$JOBWIRE_JOB_ID" "$JOBWIRE_ATTEMPT" "$JOBWIRE_JOB_TYPE"
