"""A model's turn layout, derived from its own chat template (Jinja), for both local backends.

The llamacpp backend reads the template from the GGUF (``tokenizer.chat_template``), the torch backend from
the processor or tokenizer. Both keep one live sequence that is only appended to, so the template is
rendered with marker strings in place of the contents and cut into the pieces a chunk is written in::

    R1 = render([system S, user U1], add_generation_prompt)
    R2 = render([system S, user U1, assistant D1, user U2], add_generation_prompt)
    R3 = render([... , assistant D2, user U3], add_generation_prompt)

    R1 = sys_open S head U1 user_close           head: between the system text and the first user text
    R2 = R1 + D1 asst_close user_open U2 user_close   (and R3 = R2 + the same pieces around D2, U3)

``asst_close`` is what follows D1 in ``render([system, user U1, assistant D1])`` (no generation prompt), and
``user_open`` the rest of the text between D1 and U2. Whatever the template writes between the
generation prompt and the assistant's text (SmolVLM's ``Assistant:`` then a space) is moved to the end of
``user_close``, so the decision the model writes starts with the decision itself and the committed context
is exactly the template's render. A template that folds the system text into the first user turn
(Gemma 3) works the same way: the cut points are found by position, not assumed.

A template whose render of n+1 turns does not start with its render of n turns (one that rewrites earlier
turns, e.g. drops past reasoning) cannot be laid out on an append-only sequence: that is one
``ModelLoadError`` naming the model. ``bos_token`` renders as "": llama.cpp adds BOS from the GGUF's own
flag, and the torch backend passes the tokenizer's BOS text so it is tokenized like the template's.
"""

from __future__ import annotations

from engine.backends.base import ModelLoadError
from engine.backends.gguf_layout import Layout

SYSTEM, USER, REPLY = "PRESENCESYSTEMQ7", "PRESENCEUSERQ7", "PRESENCEREPLYQ7"


def _environment():
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):
        """transformers' ``{% generation %}…{% endgeneration %}`` (marks assistant text): rendered as its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body).set_lineno(lineno)

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    def strftime_now(fmt):
        import datetime

        return datetime.datetime.now().strftime(fmt)

    # The same environment options as transformers' and llama-cpp-python's template renderers.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, "jinja2.ext.loopcontrols"])
    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    return env


def _messages(turns: int, parts: bool) -> list[dict]:
    def msg(role: str, text: str) -> dict:
        return {"role": role, "content": [{"type": "text", "text": text}] if parts else text}

    out = [msg("system", SYSTEM), msg("user", USER + "1")]
    for i in range(1, turns):
        out += [msg("assistant", f"{REPLY}{i}"), msg("user", f"{USER}{i + 1}")]
    return out


def derive_layout(template: str, model: str, bos_token: str = "", eos_token: str = "") -> Layout:
    """The ``Layout`` that ``template`` renders; ``ModelLoadError`` naming ``model`` when it has none."""
    import jinja2

    try:
        compiled = _environment().from_string(template)
    except jinja2.TemplateError as exc:
        raise ModelLoadError(f"{model}: its chat template does not parse ({exc})") from None

    def render(messages: list[dict], prompt: bool = True) -> str:
        return compiled.render(messages=messages, add_generation_prompt=prompt, bos_token=bos_token,
                               eos_token=eos_token)

    errors: list[str] = []
    for parts in (True, False):  # content as a list of typed parts (VLM templates), else plain strings
        try:
            r1, r2, r3 = (render(_messages(n, parts)) for n in (1, 2, 3))
            replied = render(_messages(2, parts)[:3], prompt=False)
        except (jinja2.TemplateError, TypeError, KeyError, IndexError, AttributeError) as exc:
            errors.append(str(exc))
            continue
        if all(f"{USER}{i}" in r3 for i in (1, 2, 3)):
            return _cut(model, r1, r2, r3, replied)
        errors.append("the user text does not appear in the render")
    raise ModelLoadError(f"{model}: its chat template cannot be rendered with plain text turns ({errors[-1]})")


def _cut(model: str, r1: str, r2: str, r3: str, replied: str) -> Layout:
    def fail(why: str) -> ModelLoadError:
        return ModelLoadError(f"{model}: its chat template cannot be laid out as one append-only sequence ({why}); "
                              "use a model whose template only appends turns, or the openai backend")

    if not (r2.startswith(r1) and r3.startswith(r2)):
        raise fail("a later turn rewrites an earlier one")
    u1 = r1.index(f"{USER}1")
    user_close = r1[u1 + len(f"{USER}1"):]
    if SYSTEM in r1[:u1]:
        s = r1.index(SYSTEM)
        sys_open, head = r1[:s], r1[s + len(SYSTEM):u1]
    else:  # the template drops a system message: the system text leads the first user text
        sys_open, head = r1[:u1], "\n\n"

    def step(prev: str, cur: str, i: int) -> tuple[str, str, str]:
        """(reply_open, between, close) of turn ``i`` appended to ``prev``."""
        rest = cur[len(prev):]
        d, u = f"{REPLY}{i}", f"{USER}{i + 1}"
        if d not in rest or u not in rest or rest.index(d) > rest.index(u):
            raise fail("a reply does not appear where it was written")
        reply_open = rest[:rest.index(d)]
        between = rest[rest.index(d) + len(d):rest.index(u)]
        return reply_open, between, rest[rest.index(u) + len(u):]

    first, second = step(r1, r2, 1), step(r2, r3, 2)
    if first != second or first[2] != user_close:
        raise fail("turns are not written the same way each time")
    reply_open, between, _ = first
    d1 = f"{REPLY}1"
    asst_close = replied[replied.index(d1) + len(d1):] if d1 in replied else between
    if not between.startswith(asst_close):
        asst_close = between
    user_open = between[len(asst_close):]
    return Layout(sys_open=sys_open, sys_close=head, user_open=user_open,
                  user_close=user_close + reply_open, asst_close=asst_close)


def template_layout(template: str | None, model: str, fallback: Layout, bos_token: str = "",
                    eos_token: str = "") -> Layout:
    """The layout ``template`` renders, or ``fallback`` for a model that ships no template."""
    return derive_layout(template, model, bos_token, eos_token) if template else fallback


def image_text(template: str, bos_token: str = "", eos_token: str = "") -> str | None:
    """What ``template`` writes for an image part between two texts (Qwen-VL's vision start/pad/end, SmolVLM's
    ``<image>``, Gemma 3's ``<start_of_image>``): the text a processor expands into the image's tokens. None when
    the template writes images elsewhere (LLaVA-1.5 puts them before the text)."""
    content = [{"type": "text", "text": f"{USER}1"}, {"type": "image"}, {"type": "text", "text": f"{USER}2"}]
    try:
        out = _environment().from_string(template).render(messages=[{"role": "user", "content": content}],
                                                           add_generation_prompt=False, bos_token=bos_token,
                                                           eos_token=eos_token)
    except Exception:  # noqa: BLE001 - a template that cannot render an image part has no image text
        return None
    a, b = out.find(f"{USER}1"), out.find(f"{USER}2")
    between = out[a + len(f"{USER}1"):b] if 0 <= a < b else ""
    return between if between.strip() else None
