import pytest
import torch

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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny tensors: more only add overhead, tenfold on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
