# The smallest training script that shows up in `runctl logs -f`/metrics: one metric at step 0,
# then exit. What is measured is how long it takes for that point to be visible, not training.
import runctl

run = runctl.init()
run.log({"loss": 1.0}, step=0)
