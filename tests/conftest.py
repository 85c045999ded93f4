import pytest

from bonevlp.data.synthetic import WorldSpec, generate_world


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small synthetic world in the MURA layout, generated once per test session."""
    root = tmp_path_factory.mktemp("world")
    generate_world(root, WorldSpec(seed=0, n_patients=40, image_size=64, max_images_per_study=2), progress=False)
    return root
