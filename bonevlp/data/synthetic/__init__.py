"""The synthetic bone radiograph world: seeded patients, radiographs and French reports in real datasets' layouts.

Real radiographs cannot be downloaded here, so this world is the project's default data. `world` draws the ground
truth (no pixels), `anatomy` and `render` draw the radiographs, `identity` and `reports` write the French reports
with their PHI annotations, and `generate` writes everything in the official layouts of MURA v1.1, FracAtlas,
OAI knee KL, RSNA Bone Age and the pretraining corpus.
"""

from bonevlp.data.synthetic.generate import (
    MURA_DIR,
    WorldSummary,
    default_workers,
    generate_world,
    image_path,
    study_id,
)
from bonevlp.data.synthetic.render import render_image
from bonevlp.data.synthetic.reports import PhiSpan, Report, write_report
from bonevlp.data.synthetic.world import (
    BODY_PARTS,
    COHORTS,
    DEVICES,
    FINDINGS,
    MURA_PARTS,
    VIEWS,
    Finding,
    Patient,
    Study,
    WorldSpec,
    sample_studies,
    sample_world,
)
