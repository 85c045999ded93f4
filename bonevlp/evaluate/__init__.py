"""Evaluation of pretrained image and text towers, one concern per module:

- `tasks`: the four downstream tasks (what each predicts, from which images, scored on which units);
- `linear`, `finetune`, `downstream`: linear probes, LP-FT fine-tuning, and the benchmark that runs them at every
  label fraction and seed; `metrics`: per-unit metrics and seed-averaged bootstrap intervals;
- `prompts`, `zeroshot`: French prompt ensembles and zero-shot scores; `retrieval`: image <-> report retrieval;
- `inputs`: the models and MURA folds the stages compare; `tables`: markdown, CSV and LaTeX; `checks`: input checks.

Submodules are not imported here so that importing one does not pull in the others' dependencies.
"""
