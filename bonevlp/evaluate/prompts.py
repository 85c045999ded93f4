"""French prompts for zero-shot classification: one list of prompts per class of each downstream task.

The prompts are written in the words of the French reports the text tower was trained on (conclusions such as
"Examen dans les limites de la normale.", "Pas de fracture visible.", "Matériel d'ostéosynthèse en place.",
"Gonarthrose modérée (stade 3 de Kellgren et Lawrence)."), not in English class names: the tower has only ever read
reports. Each class gets several phrasings, each put in several templates (a bare conclusion, or after the
technique line of a radiograph); CLIP's template ensembling then averages the class's prompt embeddings
(`bonevlp.evaluate.zeroshot.class_embeddings`).

Class order is label order: the class at index i is label i of the task's data (MURA 0 normal / 1 abnormal,
FracAtlas `fractured` 0 / 1, Kellgren-Lawrence grade 0-4), and the last class of a binary task is the positive one.
An abnormal MURA study of the synthetic world has one focal finding (fracture, osteosynthesis hardware or a focal
bone lesion), so "abnormal" lists the three.

The prompts were written from the report vocabulary alone; none was chosen by a score on a test set (MURA valid,
FracAtlas test, OAI test). Comparing prompt sets is only allowed on the pretraining validation fold of MURA.
Bone age (RSNA) is a regression: it has no classes, hence no prompts.
"""

from __future__ import annotations


def ensemble(templates: tuple[str, ...], phrasings: tuple[str, ...]) -> list[str]:
    """Every phrasing in every template ("{}" marks where the phrasing goes)."""
    return [template.format(phrasing) for template in templates for phrasing in phrasings]


# Where a conclusion stands in a report: alone, or after the technique line naming the exam.
LIMB_TEMPLATES = (  # MURA: upper limb
    "{}",
    "Radiographies du poignet, face et profil. {}",
    "Radiographies de la main, face et profil. {}",
    "Radiographies du coude, face et profil. {}",
    "Radiographies de l'épaule, face et profil. {}",
)
FRACATLAS_TEMPLATES = (  # FracAtlas images: hand, leg, hip, shoulder
    "{}",
    "Radiographies de la main, face et profil. {}",
    "Radiographies de la cheville, face et profil. {}",
    "Radiographies de la hanche, face et profil. {}",
    "Radiographies de l'épaule, face et profil. {}",
)
KNEE_TEMPLATES = (
    "{}",
    "Radiographies du genou, face en charge et profil. {}",
    "Radiographie standard du genou (face et profil). {}",
)

NORMAL = (
    "Examen dans les limites de la normale.",
    "Pas d'anomalie osseuse décelable.",
    "Radiographies normales.",
    "Pas de fracture ni de lésion osseuse.",
    "Pas de fracture visible. Absence de lésion osseuse.",
    "Radiographie normale.",
)
ABNORMAL = (
    "Fracture déplacée.",
    "Trait de fracture, sans déplacement.",
    "Matériel d'ostéosynthèse en place.",
    "Ostéosynthèse par plaque vissée.",
    "Lésion ostéolytique à explorer.",
    "Radiographie anormale.",
)
NO_FRACTURE = (
    "Pas de fracture visible.",
    "Absence de trait de fracture.",
    "Absence de lésion traumatique visible.",
    "Pas de lésion osseuse traumatique.",
)
FRACTURE = (
    "Fracture déplacée.",
    "Fracture non déplacée.",
    "Trait de fracture, avec déplacement.",
    "Solution de continuité corticale, sans déplacement.",
)
KELLGREN_LAWRENCE = (  # grades 0 to 4
    ("Pas de gonarthrose.", "Absence de signe radiologique d'arthrose.",
     "Interlignes fémoro-tibiaux préservés, sans ostéophyte."),
    ("Doute sur une gonarthrose débutante.", "Ostéophyte douteux, sans pincement de l'interligne.",
     "Gonarthrose douteuse (stade 1 de Kellgren et Lawrence)."),
    ("Gonarthrose débutante.", "Ostéophytes marginaux, sans pincement net de l'interligne.",
     "Gonarthrose débutante (stade 2 de Kellgren et Lawrence)."),
    ("Gonarthrose modérée.", "Pincement modéré de l'interligne fémoro-tibial, avec ostéophytes marginaux.",
     "Gonarthrose modérée (stade 3 de Kellgren et Lawrence)."),
    ("Gonarthrose sévère.", "Disparition de l'interligne fémoro-tibial, volumineux ostéophytes.",
     "Gonarthrose sévère (stade 4 de Kellgren et Lawrence)."),
)  # fmt: skip

# Exam-conditioned prompts. An exam's body part is known before anyone reads the image (it is what was requested:
# MURA's study type, FracAtlas's region flag, a knee series), so each image may be scored against prompts that name
# its own body part. Generic prompts mix the body parts, and there the cosine to "a wrist" outweighs the cosine to
# "a fracture": a finding direction is learnt per body part. Measured on the MURA pretraining validation fold
# (README, "Zero-shot"), never on a test set.
PART_PHRASES = {
    "ELBOW": "du coude", "FINGER": "du doigt", "FOREARM": "de l'avant-bras", "HAND": "de la main",
    "HUMERUS": "de l'humérus", "SHOULDER": "de l'épaule", "WRIST": "du poignet",  # MURA's seven study types
    "LEG": "de la jambe", "HIP": "de la hanche", "KNEE": "du genou",  # FracAtlas's other regions, OAI's knees
}  # fmt: skip
PART_TEMPLATES = ("Radiographies {part}, face et profil. {{}}", "Radiographie standard {part}. {{}}")
CLASS_PHRASINGS = {  # task -> class -> its phrasings, classes in label order
    "mura": {"normal": NORMAL, "abnormal": ABNORMAL},
    "fracture": {"no_fracture": NO_FRACTURE, "fracture": FRACTURE},
    "oai_kl": {f"kl_{grade}": words for grade, words in enumerate(KELLGREN_LAWRENCE)},
}
TEMPLATES = {"mura": LIMB_TEMPLATES, "fracture": FRACATLAS_TEMPLATES, "oai_kl": KNEE_TEMPLATES}  # generic prompts


def _prompts(task: str, templates: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: ensemble(templates, phrasings) for name, phrasings in CLASS_PHRASINGS[task].items()}


PROMPTS: dict[str, dict[str, list[str]]] = {task: _prompts(task, templates) for task, templates in TEMPLATES.items()}
"""task -> class -> prompts, classes in label order."""


def part_prompts(task: str, part: str) -> dict[str, list[str]]:
    """`PROMPTS[task]`'s classes, each with its phrasings in templates that name body part `part` (a key of
    PART_PHRASES)."""
    if task not in CLASS_PHRASINGS:
        raise ValueError(f"unknown zero-shot task {task!r}: expected one of {sorted(CLASS_PHRASINGS)}")
    if part not in PART_PHRASES:
        raise ValueError(f"no phrase for body part {part!r}: add it to PART_PHRASES ({sorted(PART_PHRASES)})")
    return _prompts(task, tuple(template.format(part=PART_PHRASES[part]) for template in PART_TEMPLATES))
