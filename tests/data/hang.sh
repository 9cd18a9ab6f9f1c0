#!/bin/sh
# A configured job type for the tests that never ends by itself and
# ignores SIGTERM (and so do the sleeps it starts), so that only SIGKILL
# stops it. Its pid goes to DIR/JOB_ID.pid (DIR is the first argument).
trap '' TERM
echo $$ > "$1/$JOBWIRE_JOB_ID.pid.tmp"
mv "$1/$JOBWIRE_JOB_ID.pid.tmp" "$1/$JOBWIRE_JOB_ID.pid"
echo "progress 5 hanging"
while :; do
  sleep 1
done
