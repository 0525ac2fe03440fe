"""What is not the service: the load generator, the benchmarks and the demo data.

Tools reach guard through its public names only (the repository, the
models, the deploy functions), as any other client of the package would.
"""
