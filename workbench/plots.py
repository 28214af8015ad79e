"""Plotly figures for the Workbench: reward heatmaps over the image, training curves, distributions, accuracy.

Every function takes plain data and returns a ``plotly.graph_objects.Figure``; plotly is imported lazily so
importing the Workbench stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from srum_core.limits import MAX_PLOT_SIDE


def _go():
    import plotly.graph_objects as go

    return go


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """``(H, W)`` → ``(ceil(H/f), ceil(W/f))``: the mean over each ``f`` x ``f`` block (edges padded by repetition)."""
    if factor <= 1:
        return array
    height, width = array.shape
    padded = np.pad(array, ((0, -height % factor), (0, -width % factor)), mode="edge")
    rows, cols = padded.shape[0] // factor, padded.shape[1] // factor
    return padded.reshape(rows, factor, cols, factor).mean(axis=(1, 3))


def _shrink_factor(height: int, width: int, max_side: int) -> int:
    return max(1, -(-max(height, width) // max_side))


def reward_heatmap(
    image: Any,
    reward_pixel: np.ndarray,
    reward_token: np.ndarray | None = None,
    view: str = "pixel",
    boxes: Sequence[tuple[tuple[int, int, int, int], str]] = (),
    highlight: int | None = None,
    title: str = "",
    opacity: float = 0.55,
    max_side: int = MAX_PLOT_SIDE,
) -> Any:
    """The image with the reward map laid over it.

    ``image``: a PIL image of the map's size, or None for a white canvas. ``reward_pixel``: ``(H, W)``; ``reward_token``: ``(H/t, W/t)``, drawn as ``t``x``t`` cells when
    ``view="token"``. ``boxes``: ``(box, label)`` pairs outlined on top and numbered 1, 2, ... (the label shows on
    hover; numbers that would sit on top of each other are moved aside); ``highlight`` indexes the one drawn bold.
    Hovering shows the reward value under the cursor. A map or image larger than ``max_side`` is drawn averaged
    over blocks, in the image's own coordinates, so the figure's size does not grow with the image. Boxes and
    labels are built as whole lists (one layout update each): the cost is linear in the number of boxes.
    """
    go = _go()
    if view not in ("pixel", "token"):
        raise ValueError(f"view={view!r}: choose 'pixel' or 'token'")
    height, width = reward_pixel.shape
    factor = _shrink_factor(height, width, max_side)
    shown = (-(-width // factor), -(-height // factor))
    if image is None:  # no image: a white canvas
        picture = np.full((shown[1], shown[0], 3), 255, dtype=np.uint8)
    else:
        picture = image.convert("RGB")
        if factor > 1:
            picture = picture.resize(shown, resample=2)  # 2 = bilinear
    offset = (factor - 1) / 2
    fig = go.Figure()
    fig.add_trace(go.Image(z=np.asarray(picture), x0=offset, y0=offset, dx=factor, dy=factor, hoverinfo="skip", name="image"))
    if view == "token":
        if reward_token is None:
            raise ValueError("the token view needs the token map")
        rows, cols = reward_token.shape
        cell_factor = _shrink_factor(rows, cols, max_side)
        values = block_mean(reward_token, cell_factor)
        cell_w, cell_h = width / cols * cell_factor, height / rows * cell_factor
        fig.add_trace(
            go.Heatmap(
                z=values,
                x0=cell_w / 2 - 0.5,
                dx=cell_w,
                y0=cell_h / 2 - 0.5,
                dy=cell_h,
                colorscale="RdYlGn",
                zmin=min(0.0, float(reward_token.min())),
                zmax=max(1.0, float(reward_token.max())),
                opacity=opacity,
                colorbar={"title": "reward"},
                hovertemplate="token (%{y:.0f}, %{x:.0f}) reward %{z:.3f}<extra></extra>",
                name="token reward",
            )
        )
    else:
        values = block_mean(reward_pixel, factor)
        fig.add_trace(
            go.Heatmap(
                z=values,
                x0=offset,
                dx=factor,
                y0=offset,
                dy=factor,
                colorscale="RdYlGn",
                zmin=min(0.0, float(reward_pixel.min())),
                zmax=max(1.0, float(reward_pixel.max())),
                opacity=opacity,
                colorbar={"title": "reward"},
                hovertemplate="x %{x} y %{y}: reward %{z:.3f}<extra></extra>",
                name="pixel reward",
            )
        )
    shapes, annotations = _box_layout(boxes, highlight, width)
    fig.update_layout(shapes=shapes, annotations=annotations)
    fig.update_xaxes(range=[-0.5, width - 0.5], showgrid=False, constrain="domain")
    fig.update_yaxes(range=[height - 0.5, -0.5], showgrid=False, scaleanchor="x")
    fig.update_layout(title=title or None, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10}, height=420)
    return fig


def _box_layout(
    boxes: Sequence[tuple[tuple[int, int, int, int], str]], highlight: int | None, width: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rectangles and number labels for ``boxes``; a label whose spot is taken moves right by one label width."""
    shapes, annotations = [], []
    step = max(width / 24, 1.0)  # about one short label's width, in image pixels
    taken: dict[tuple[int, int], int] = {}
    for index, (box, label) in enumerate(boxes):
        x1, y1, x2, y2 = box
        bold = index == highlight
        color = "#1f1fff" if bold else "#222222"
        shapes.append(
            {
                "type": "rect",
                "x0": x1 - 0.5,
                "y0": y1 - 0.5,
                "x1": x2 - 0.5,
                "y1": y2 - 0.5,
                "line": {"color": color, "width": 4 if bold else 1.5, "dash": "solid" if bold else "dot"},
            }
        )
        spot = (round(x1 / step), round(y1 / step))
        moved = taken.get(spot, 0)
        taken[spot] = moved + 1
        annotations.append(
            {
                "x": x1 - 0.5 + moved * step,
                "y": y1 - 0.5,
                "text": str(index + 1),
                "hovertext": label,
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "top",
                "font": {"size": 12 if bold else 10, "color": color},
                "bgcolor": "rgba(255,255,255,0.75)",
            }
        )
    return shapes, annotations


def _note(fig: Any, text: str) -> None:
    """Say in the middle of an empty figure why it is empty."""
    fig.add_annotation(
        text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 13, "color": "#555555"}
    )


def loss_curves(steps: Sequence[Mapping[str, Any]], empty_note: str = "No training step yet: run a round") -> Any:
    """Total loss, reward term and constraint term against the global training step."""
    go = _go()
    fig = go.Figure()
    if not steps:
        _note(fig, empty_note)
    x = [row.get("global_step", i) for i, row in enumerate(steps)]
    for key, name in (("total", "total loss"), ("reward_term", "reward term"), ("constraint_term", "constraint term")):
        y = [row.get(key) for row in steps]
        if any(v is not None for v in y):
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name))
    fig.update_layout(
        title="Training loss", xaxis_title="step", yaxis_title="loss", height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def reward_distribution(
    values: Mapping[str, Sequence[float]], empty_note: str = "No rewards yet: run a round"
) -> Any:
    """Overlaid histograms of reward components (e.g. ``global``, ``region``, ``token weight``)."""
    go = _go()
    fig = go.Figure()
    if not any(len(data) for data in values.values()):
        _note(fig, empty_note)
    for name, data in values.items():
        if len(data):
            fig.add_trace(go.Histogram(x=list(data), name=name, opacity=0.6, nbinsx=20))
    fig.update_layout(
        barmode="overlay", title="Reward distributions", xaxis_title="value", yaxis_title="count", height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def accuracy_by_category(
    rows: Sequence[Mapping[str, Any]], empty_note: str = "No evaluation yet: run a round with evaluation prompts > 0"
) -> Any:
    """Grouped bars: accuracy per category, one bar per (round, measure); ``empty_note`` says why there are none.

    ``rows``: ``{"round": str, "measure": "referee" | "judge", "category": str, "accuracy": float}``.
    """
    go = _go()
    fig = go.Figure()
    if not rows:
        _note(fig, empty_note)
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row["round"]), str(row["measure"])), []).append(row)
    for (round_name, measure), items in groups.items():
        fig.add_trace(
            go.Bar(
                x=[r["category"] for r in items],
                y=[r["accuracy"] for r in items],
                name=f"{round_name} · {measure}",
            )
        )
    fig.update_layout(
        barmode="group", title="Accuracy per category", yaxis={"range": [0, 1], "title": "accuracy"}, height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def srum_result(data: Mapping[str, Any], set_name: str = "eval") -> Any:
    """The SRUM result table as bars: each arm's paired change against the base model, with its 95% interval,
    overall (left) and per category (right). ``data``: ``docs/results/sandbox_srum.json``; ``set_name``: ``eval``
    (in-distribution) or ``transfer``."""
    go = _go()
    from plotly.subplots import make_subplots

    arms = {name: row for name, row in data.get("arms", {}).items() if name != "base"}
    rows = {name: (row if set_name == "eval" else row.get("transfer")) for name, row in arms.items()}
    rows = {name: row for name, row in rows.items() if row and "delta_vs_base" in row}
    fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65],
                        subplot_titles=("all categories", "per category"))
    names = list(rows)
    deltas = [rows[n]["delta_vs_base"] for n in names]
    fig.add_trace(go.Bar(
        x=names, y=deltas, name="Δ vs base",
        error_y={"type": "data", "symmetric": False,
                 "array": [rows[n]["ci95_vs_base"][1] - rows[n]["delta_vs_base"] for n in names],
                 "arrayminus": [rows[n]["delta_vs_base"] - rows[n]["ci95_vs_base"][0] for n in names]},
        marker_color=["#4c78a8" if n not in ("oracle", "renders") else "#9d9d9d" for n in names],
        showlegend=False,
    ), row=1, col=1)
    for n in names:
        cats = rows[n].get("per_category", {})
        order = sorted(cats)
        fig.add_trace(go.Bar(
            x=order, y=[cats[c]["delta_vs_base"] for c in order], name=n,
            error_y={"type": "data", "symmetric": False,
                     "array": [cats[c]["ci95_vs_base"][1] - cats[c]["delta_vs_base"] for c in order],
                     "arrayminus": [cats[c]["delta_vs_base"] - cats[c]["ci95_vs_base"][0] for c in order]},
        ), row=1, col=2)
    label = "in-distribution" if set_name == "eval" else "transfer"
    fig.update_layout(
        barmode="group", height=380, margin={"l": 10, "r": 10, "t": 60, "b": 10},
        title=f"Change in referee accuracy against the base model ({label} set, points, paired 95% CI)",
    )
    fig.update_yaxes(title_text="Δ accuracy (points)", row=1, col=1)
    return fig
