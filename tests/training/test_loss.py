"""The reference's weighted SFT: per-tick weights and the loss normalised by the sum of weights."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from training.loss import IGNORE, weighted_sft_loss  # noqa: E402
from training.weights import WeightConfig, tick_weights  # noqa: E402


def test_tick_weights_follow_the_recipe():
    seq = ["</silence>", "</silence>", "</silence>", "</response> Door!", "</silence>", "</silence>",
           "</response> Let me check. </delegation> What is 17 x 23?", "</response> Again"]
    assert tick_weights(seq) == [1.0, 0.6, 0.6, 1.5, 1.0, 0.6, 1.5, 1.5]
    cfg = WeightConfig(response=2.0, first_silence=1.0, repeated_silence=0.4)
    assert tick_weights(seq[:4], cfg, multipliers={1: 0.5}) == [1.0, 0.2, 0.4, 2.0]


@pytest.mark.parametrize("bad", [0.3, 0.9])
def test_repeated_silence_weight_stays_in_the_published_range(bad):
    with pytest.raises(ValueError, match="0.4"):
        WeightConfig(repeated_silence=bad)


def test_loss_by_hand():
    # 4 positions, vocabulary 3. Position t predicts label t+1.
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]])
    labels = torch.tensor([[IGNORE, 0, 2, 1]])
    weights = torch.tensor([[0.0, 1.5, 0.6, 1.0]])

    def nll(row, k):
        z = [float(x) for x in row]
        return -(z[k] - math.log(sum(math.exp(v) for v in z)))

    expected = (1.5 * nll(logits[0, 0], 0) + 0.6 * nll(logits[0, 1], 2) + 1.0 * nll(logits[0, 2], 1)) / 3.1
    got = float(weighted_sft_loss(logits, labels, weights))
    assert got == pytest.approx(expected, rel=1e-6)


def test_loss_ignores_unlabelled_tokens_and_equals_ce_with_equal_weights():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 11)
    labels = torch.randint(0, 11, (2, 7))
    labels[:, :3] = IGNORE
    ones = torch.ones(2, 7)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=IGNORE)
    assert float(weighted_sft_loss(logits, labels, ones)) == pytest.approx(float(ce), rel=1e-6)
    scaled = float(weighted_sft_loss(logits, labels, 3.0 * ones))  # normalised: a common scale cancels
    assert scaled == pytest.approx(float(ce), rel=1e-6)
    w = ones.clone()
    w[:, :3] = 100.0  # weights on ignored positions change nothing
    assert float(weighted_sft_loss(logits, labels, w)) == pytest.approx(float(ce), rel=1e-6)


def test_loss_without_labels_is_zero_with_a_graph():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    loss = weighted_sft_loss(logits, torch.full((1, 4), IGNORE), torch.ones(1, 4))
    loss.backward()
    assert float(loss.detach()) == 0.0 and logits.grad is not None


def _toy_chunk():
    """A hand-made chunk of 3 ticks: a prefix [0, 2), then per tick a user turn (a hint token 7, an image
    token 9) and a 2-token decision; tick t's decision is at [4t + 4, 4t + 6)."""
    from training.episodes import ChunkLayout, Segment

    ids = [1, 2, 7, 9, 5, 6, 7, 9, 5, 6, 7, 9, 5, 6]
    seg = Segment(ids=ids, positions=torch.arange(len(ids)).repeat(3, 1))
    return ChunkLayout(segments=[seg], labels={0: (4, 6), 1: (8, 10), 2: (12, 14)})


def _toy_annotation():
    from pathlib import Path

    from training.dataset import Annotation, Item

    return Annotation(Path("toy.json"), Path("toy.mp4"), 3, responses=[Item(1, "Door!")])


@pytest.mark.parametrize("context", [0.0, 0.25])
def test_context_weight_trains_the_windows_stream_tokens_but_never_images(context):
    import random

    from training.episodes import episodes

    chunk = _toy_chunk()
    (ep,) = episodes([chunk], _toy_annotation(), random.Random(0), WeightConfig(context=context), 3, 3,
                     image_token_id=9)
    labelled = (ep.labels != IGNORE).tolist()
    decisions = [i for t in (0, 1, 2) for i in range(*chunk.labels[t])]
    # the decisions always carry their tick weights (1.0 first silence, 1.5 response, 1.0 silence after it)
    assert [float(ep.weights[i]) for i in decisions] == [1.0, 1.0, 1.5, 1.5, 1.0, 1.0]
    others = [i for i in range(len(ep.input_ids)) if i not in decisions]
    if context == 0.0:  # the reference recipe: nothing else carries loss
        assert not any(labelled[i] for i in others)
    else:  # every other token of the window except the image tokens, at the context weight
        for i in others:
            is_image = int(ep.input_ids[i]) == 9
            assert labelled[i] == (not is_image) and float(ep.weights[i]) == (0.0 if is_image else context)


def test_context_weight_stays_in_range():
    with pytest.raises(ValueError, match="context"):
        WeightConfig(context=1.5)
