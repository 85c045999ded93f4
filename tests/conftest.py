import pytest

from bonevlp.data.synthetic import WorldSpec, generate_world

# A world small enough for tests: every cohort present, a few images each.
TINY_SPEC = WorldSpec(
    seed=0, n_patients=40, image_size=64, max_images_per_study=2, n_corpus_patients=12, n_fracatlas_images=8,
    n_oai_patients=6, n_rsna_images=8,
)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small synthetic world in every layout, generated once per test session."""
    root = tmp_path_factory.mktemp("world")
    generate_world(root, TINY_SPEC, progress=False)
    return root
