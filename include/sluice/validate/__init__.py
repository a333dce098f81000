"""Validation of one staged chunk, in the order it happens: cast to the declared types (cast.py, casters.py), run the
Great Expectations suite (suite.py), split good rows from quarantined ones (quarantine.py), all driven by chunk.py;
then the run-wide quality gate (gate.py). Submodules are imported on use: parsing a DAG never imports GX."""
