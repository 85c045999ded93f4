import functools
import math

import pytest
import torch
import torch.nn.functional as F

from bonevlp.loss import ClipLoss, LabelAwareClipLoss, SigLipLoss, label_similarity_targets, make_loss

open_clip = pytest.importorskip("open_clip", reason="open-clip-torch is a dev dependency: pip install -e '.[dev]'")


def _features(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(torch.randn(n, d, generator=g), dim=-1)


@pytest.mark.parametrize("n,d,scale", [(8, 16, 1 / 0.07), (33, 64, 1.0), (5, 128, 100.0)])
def test_clip_loss_matches_open_clip_value_and_gradients(n, d, scale):
    img, txt = _features(n, d, seed=n)
    ours_img, ours_txt = img.clone().requires_grad_(), txt.clone().requires_grad_()
    ref_img, ref_txt = img.clone().requires_grad_(), txt.clone().requires_grad_()
    ours = ClipLoss()(ours_img, ours_txt, torch.tensor(scale))
    ref = open_clip.ClipLoss()(ref_img, ref_txt, torch.tensor(scale))
    assert abs(ours.item() - ref.item()) < 1e-6
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours_img.grad, ref_img.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours_txt.grad, ref_txt.grad, atol=1e-6, rtol=1e-5)


def test_clip_loss_rewards_aligned_pairs():
    img, txt = _features(16, 32, seed=0)
    loss = ClipLoss()
    aligned = loss(img, img, torch.tensor(50.0))
    random = loss(img, txt, torch.tensor(50.0))
    assert aligned < 0.01 < math.log(16) * 0.5 < random


def test_clip_loss_output_dict():
    img, txt = _features(4, 8, seed=1)
    out = ClipLoss()(img, txt, torch.tensor(10.0), output_dict=True)
    assert set(out) == {"contrastive_loss"} and out["contrastive_loss"].ndim == 0


def _leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.clone().requires_grad_() for t in tensors]


@pytest.mark.parametrize("n,d,log_scale,bias", [(8, 16, math.log(10), -10.0), (33, 64, 0.0, 0.0), (5, 128, 2.0, -3.5)])
def test_siglip_loss_matches_open_clip_value_and_gradients(n, d, log_scale, bias):
    img, txt = _features(n, d, seed=n)
    scale, b = torch.tensor(log_scale).exp(), torch.tensor(bias)
    ours, ref = _leaves(img, txt, scale, b), _leaves(img, txt, scale, b)
    ours_loss = SigLipLoss()(*ours)
    ref_loss = open_clip.loss.SigLipLoss()(*ref)
    torch.testing.assert_close(ours_loss, ref_loss, atol=1e-6, rtol=1e-6)
    ours_loss.backward()
    ref_loss.backward()
    for mine, theirs in zip(ours, ref):  # image, text, scale and bias
        torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-6, rtol=1e-5)


def test_siglip_multi_positive_targets_are_binary_cross_entropy():
    img, txt = _features(6, 16, seed=3)
    scale, bias = torch.tensor(10.0), torch.tensor(-2.0)
    study = torch.tensor([0, 0, 1, 2, 2, 2])  # images of one study: each is a positive of the study's reports
    targets = study[:, None] == study[None, :]
    logits = scale * img @ txt.T + bias
    expected = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="sum") / 6
    torch.testing.assert_close(SigLipLoss()(img, txt, scale, bias, targets=targets), expected)
    identity = SigLipLoss()(img, txt, scale, bias, targets=torch.eye(6))
    torch.testing.assert_close(identity, SigLipLoss()(img, txt, scale, bias))
    with pytest.raises(ValueError, match="6x6 matrix"):
        SigLipLoss()(img, txt, scale, bias, targets=targets[:5])


def test_label_aware_equals_clip_with_distinct_one_hot_labels():
    img, txt = _features(8, 32, seed=4)
    labels = F.one_hot(torch.randperm(10, generator=torch.Generator().manual_seed(0))[:8], 10).float()
    ours, ref = _leaves(img, txt), _leaves(img, txt)
    ours_loss = LabelAwareClipLoss()(*ours, torch.tensor(20.0), labels)
    ref_loss = ClipLoss()(*ref, torch.tensor(20.0))
    torch.testing.assert_close(ours_loss, ref_loss, atol=1e-6, rtol=1e-6)
    ours_loss.backward()
    ref_loss.backward()
    for mine, theirs in zip(ours, ref):
        torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-7, rtol=1e-5)


def test_label_similarity_targets_are_distributions():
    labels = torch.tensor(
        [[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0.5], [0, 0, 0], [0, 1.0, 0.0], [0.0, 0, 1.0]]
    )  # two identical "normal" pairs, a finding with an uncertain second one, an unlabelled pair
    targets = label_similarity_targets(labels)
    assert (targets >= 0).all()
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(6))
    torch.testing.assert_close(targets[0], torch.tensor([0.5, 0.5, 0, 0, 0, 0]))
    torch.testing.assert_close(targets[3], torch.tensor([0.0, 0, 0, 1, 0, 0]))  # all-zero labels: identity row
    assert targets[:, 3].tolist() == [0, 0, 0, 1, 0, 0]  # and no other row claims it
    r = math.sqrt(1.25)  # |[0, 1, .5]|: cosine 1/r with [0, 1, 0], .5/r with [0, 0, 1]
    row = torch.tensor([0, 0, 1, 0, 1 / r, 0.5 / r])
    torch.testing.assert_close(targets[2], row / row.sum())
    torch.testing.assert_close(label_similarity_targets(torch.eye(4)), torch.eye(4))


# Pairs 0 and 1 are both "pas de fracture"; every other pair has labels of its own.
SHARED_LABELS = F.one_hot(torch.tensor([0, 0, 1, 2, 3, 4, 5, 6]), 7).float()


def test_label_aware_loss_ignores_swapping_texts_of_identically_labelled_pairs():
    img, txt = _features(8, 32, seed=5)
    swapped = txt[[1, 0, 2, 3, 4, 5, 6, 7]]
    scale = torch.tensor(20.0)
    label_aware = functools.partial(LabelAwareClipLoss(), logit_scale=scale, labels=SHARED_LABELS)
    torch.testing.assert_close(label_aware(img, swapped), label_aware(img, txt))
    assert abs(ClipLoss()(img, swapped, scale) - ClipLoss()(img, txt, scale)) > 1e-2  # CLIP does care


@pytest.mark.parametrize("seed", range(5))
def test_label_aware_gradient_does_not_push_identically_labelled_pairs_apart(seed):
    """The sign of dL/d(img_i . txt_j) for the cross pairs (0, 1) and (1, 0): positive means a descent step lowers
    their similarity. With the texts the standard basis, img.grad is exactly that derivative. For CLIP it is
    proportional to P + Q (P, Q: the two directions' softmax probabilities of the cross pair), for label-aware to
    P + Q - 1 (each target is 1/2): negative until P + Q reaches 1, as at these random states."""
    img, txt = _features(8, 8, seed=seed)[0], torch.eye(8)
    both = (5.0 * img).softmax(dim=1) + (5.0 * img).softmax(dim=0)
    assert both[0, 1] < 1 and both[1, 0] < 1

    def similarity_gradient(loss_fn, *extra) -> torch.Tensor:
        leaf = img.clone().requires_grad_()
        loss_fn(leaf, txt, torch.tensor(5.0), *extra).backward()
        return torch.stack([leaf.grad[0, 1], leaf.grad[1, 0]])

    assert (similarity_gradient(ClipLoss()) > 0).all()  # CLIP pushes them apart as negatives
    assert (similarity_gradient(LabelAwareClipLoss(), SHARED_LABELS) < 0).all()  # label-aware pulls them together


EXTRA_ARGUMENTS = {"clip": (), "siglip": (torch.tensor(-10.0),), "label_aware": (torch.eye(4),)}


@pytest.mark.parametrize("name,extra", EXTRA_ARGUMENTS.items())
def test_every_loss_output_dict_and_factory(name, extra):
    img, txt = _features(4, 8, seed=1)
    loss_fn = make_loss(name)
    out = loss_fn(img, txt, torch.tensor(10.0), *extra, output_dict=True)
    assert set(out) == {"contrastive_loss"} and out["contrastive_loss"].ndim == 0
    torch.testing.assert_close(out["contrastive_loss"], loss_fn(img, txt, torch.tensor(10.0), *extra))


def test_make_loss_names_the_valid_losses():
    assert isinstance(make_loss("label_aware"), LabelAwareClipLoss) and isinstance(make_loss("siglip"), SigLipLoss)
    valid = r"\['clip', 'label_aware', 'siglip'\]"
    with pytest.raises(ValueError, match=rf"unknown loss 'infonce'; valid names are {valid}"):
        make_loss("infonce")
