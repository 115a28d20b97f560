"""PySide6 windows and widgets: the only package that imports Qt (DESIGN §1)."""

from ui._none_refcount import pin_none

pin_none()
