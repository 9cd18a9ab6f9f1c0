#!/bin/sh
# A configured job type for the tests that leaves a grandchild running:
# it starts a long sleep in the background, records its pid in
# DIR/JOB_ID.pid (DIR is the first argument) and waits.
set -eu
dir=$1
sleep 1000 &
echo $! > "$dir/$JOBWIRE_JOB_ID.pid.tmp"
mv "$dir/$JOBWIRE_JOB_ID.pid.tmp" "$dir/$JOBWIRE_JOB_ID.pid"
echo "progress 10 grandchild started"
wait
