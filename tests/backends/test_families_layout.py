"""chat_layout.derive_layout on the templates the families ship: the pieces a chunk is written in, appended one
after another, are exactly the template's own render of the same conversation, for every turn count."""

from __future__ import annotations

import pytest

pytest.importorskip("jinja2")

from engine.backends.base import ModelLoadError  # noqa: E402
from engine.backends.chat_layout import _environment, derive_layout  # noqa: E402
from engine.backends.gguf_layout import CHATML  # noqa: E402
from tests.backends import family_templates as T  # noqa: E402

FAMILIES = {"qwen2.5-vl": T.QWEN25_VL, "qwen3-vl": T.QWEN3_VL, "smolvlm2": T.SMOLVLM2, "gemma3": T.GEMMA3,
            "llava-1.5": T.LLAVA15}
SYSTEM = "You watch a stream. Reply with </silence> or </response> text."
TURNS = [("<0.0 seconds>", "</silence>"), ("[User Query]\nTell me when it changes.\n<1.0 seconds>", "</response> ok"),
         ("<2.0 seconds>", "</silence>")]


def template_render(template: str, turns: int) -> str:
    messages = [{"role": "system", "content": [{"type": "text", "text": SYSTEM}]}]
    for i, (user, reply) in enumerate(TURNS[:turns]):
        messages.append({"role": "user", "content": [{"type": "text", "text": user}]})
        if i < turns - 1:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": reply}]})
    return _environment().from_string(template).render(messages=messages, add_generation_prompt=True,
                                                       bos_token="<bos>", eos_token="")


def layout_render(layout, turns: int) -> str:
    out = layout.chunk_start(SYSTEM, "")
    for i, (user, reply) in enumerate(TURNS[:turns]):
        out += layout.turn(user, None, first_in_chunk=i == 0)
        if i < turns - 1:
            out += layout.decision(reply)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_appended_pieces_are_the_templates_own_render(family):
    layout = derive_layout(FAMILIES[family], family, bos_token="<bos>")
    for n in (1, 2, 3):
        want = template_render(FAMILIES[family], n)
        got = layout_render(layout, n)
        # The text a template writes between the generation prompt and the reply (SmolVLM2's and LLaVA's
        # space) closes the prompt instead, so the model's reply starts with the reply itself ...
        assert got.startswith(want) and got[len(want):] in ("", " "), f"{family}, {n} turns"
        if n < 3:  # ... and with the reply committed, the live sequence is the template's next render so far
            assert template_render(FAMILIES[family], n + 1).startswith(got + TURNS[n - 1][1])


def test_chatml_templates_give_exactly_the_chatml_table():
    assert derive_layout(T.QWEN25_VL, "q25") == CHATML
    assert derive_layout(T.QWEN3_VL, "q3") == CHATML


def test_families_differ_where_their_templates_do():
    gemma = derive_layout(T.GEMMA3, "gemma", bos_token="<bos>")
    assert gemma.user_close.endswith("<start_of_turn>model\n") and gemma.asst_close == "<end_of_turn>\n"
    assert gemma.chunk_start("S", "").startswith("<bos><start_of_turn>user\nS\n\n")  # system folded into the user
    smol = derive_layout(T.SMOLVLM2, "smol")
    assert smol.user_close == "<end_of_utterance>\nAssistant: " and smol.decision("x") == "x<end_of_utterance>\n"


def test_a_template_that_rewrites_earlier_turns_is_one_error_naming_the_model():
    with pytest.raises(ModelLoadError) as e:
        derive_layout(T.REWRITES_PAST_TURNS, "/models/thinker-Q4.gguf")
    msg = str(e.value)
    assert msg.startswith("/models/thinker-Q4.gguf:") and "append-only" in msg and "\n" not in msg


def test_a_broken_template_is_one_error_naming_the_model():
    with pytest.raises(ModelLoadError, match="^m.gguf: its chat template does not parse"):
        derive_layout("{% for m in messages %}", "m.gguf")


def test_the_image_text_is_what_each_template_writes_for_an_image():
    from engine.backends.chat_layout import image_text

    assert image_text(T.QWEN25_VL) == image_text(T.QWEN3_VL) == "<|vision_start|><|image_pad|><|vision_end|>"
    assert image_text(T.SMOLVLM2) == "<image>" and image_text(T.GEMMA3) == "<start_of_image>"
    assert image_text(T.LLAVA15) is None  # images before the text: the processor's own image token is used
