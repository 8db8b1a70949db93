# Root conftest: keep modules that act on import out of doctest collection.
collect_ignore = ["sparsecross/__main__.py", "benchmarks", "data", "build"]
