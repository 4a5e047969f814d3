"""What preflight projects before a run: each stage's run time from the benchmarks' CSVs.
Above the other packages: it reads the model registry and the split sizes."""
