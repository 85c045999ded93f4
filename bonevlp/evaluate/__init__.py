"""Evaluation of frozen image features: MURA linear probe (`probe`) and result tables (`tables`).

Submodules are not imported here so that importing one does not pull in the others' dependencies.
"""
