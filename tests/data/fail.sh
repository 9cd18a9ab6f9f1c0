#!/bin/sh
# A configured job type for the tests that fails: a message on standard
# error, exit status 3.
echo "progress 50 half way"
echo "cannot write /nonexistent/out.png: no space left on device" >&2
exit 3
