"""Interactive explorers that degrade to one static figure where no live kernel drives them.

In the rendered book and in CI (`ICL_GEOMETRY_STATIC=1`, set by the Makefile and the runner) an
explorer draws its defaults once; in a live Jupyter session it shows ipywidgets sliders.
"""

from __future__ import annotations

import os
from typing import Any, Callable

STATIC_ENV = "ICL_GEOMETRY_STATIC"


def is_static() -> bool:
    """True when widgets would not be live: the book build, CI, papermill runs, or no kernel."""
    if os.environ.get(STATIC_ENV, "") not in ("", "0"):
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    ip = get_ipython()
    return ip is None or not hasattr(ip, "kernel")


def explore(render: Callable[..., Any], defaults: dict[str, Any], **controls: Any) -> Any:
    """Call `render(**defaults)` once (static) or wire it to ipywidgets `controls` (live).

    `controls` maps a parameter to anything `ipywidgets.interact` accepts: (min, max, step), a list of
    options, a bool, or a widget. Parameters without a control stay at their default.
    """
    missing = set(controls) - set(defaults)
    if missing:
        raise ValueError(f"explore: controls {sorted(missing)} have no default; defaults name {sorted(defaults)}")
    if is_static():
        return render(**defaults)
    import ipywidgets as w

    kwargs: dict[str, Any] = {}
    for name, value in defaults.items():
        ctrl = controls.get(name)
        if ctrl is None:
            kwargs[name] = w.fixed(value)
        elif isinstance(ctrl, w.Widget):
            ctrl.value = value
            kwargs[name] = ctrl
        elif isinstance(ctrl, tuple) and len(ctrl) == 3:
            lo, hi, step = ctrl
            cls = w.IntSlider if all(isinstance(v, int) for v in ctrl) else w.FloatSlider
            kwargs[name] = cls(value=value, min=lo, max=hi, step=step, continuous_update=False)
        elif isinstance(ctrl, list):
            kwargs[name] = w.Dropdown(options=ctrl, value=value)
        elif isinstance(ctrl, bool):
            kwargs[name] = w.Checkbox(value=value)
        else:
            raise ValueError(f"explore: control for {name!r} must be (min, max, step), a list, a bool or a widget")
    return w.interact(render, **kwargs)
