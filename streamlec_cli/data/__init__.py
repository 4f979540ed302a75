"""The machinery behind :mod:`streamlec_cli.datasets` (the public entry point).

* :mod:`.fields` cuts a seeded stream of random 64-bit words into 16-bit fields, four per word,
  and builds the 65536-entry quantile tables the generators look those fields up in.
* :mod:`.higgs` and :mod:`.kdd12` are the seeded generators with the schema of each dataset.
* :mod:`.formats` reads (in chunks) and writes every published file format of both datasets.
"""
