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
