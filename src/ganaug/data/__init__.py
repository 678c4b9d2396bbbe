"""The study's real datasets, one module per concept; a new dataset kind needs its own module (like
``isic2020``), its source in ``sources`` and one branch in ``prepare``.

- ``sources``: where each dataset comes from (the public files of each kind, the datasets placed by hand)
  as source specs; fetching and extracting them (through ``ganaug.downloads``).
- ``split_lists``: where the published split lists come from (paths, or files downloaded like the above).
- ``release``: reading a release (CSV tables, image files by id) and the common end of every index.
- ``isic2019``, ``label_maps`` (ISIC 2018 masks -> label maps), ``isic2020``, ``derm7pt``
  (+ ``near_duplicates``), ``dermofit``: one release each, its folder -> an index
  (``ganaug.datasets.INDEX_COLUMNS`` + ``image_id``, the release's own image id).
- ``manual``: the hand-placed datasets checked present and complete, or a message saying how to get them.
- ``prepare``: the workflow's entry point, one dataset's inputs -> its index CSV and report.
- ``integrity``: every image decoded once before a long job reads it.
- ``splits``: the reduced training sets from the authors' lists, the expected counts and the split check
  (counts per part and class, no training / test overlap).
"""
