"""Plotly figures for the Workbench: reward heatmaps over the image, training curves, distributions, accuracy.

Every function takes plain data and returns a ``plotly.graph_objects.Figure``; plotly is imported lazily so
importing the Workbench stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _go():
    import plotly.graph_objects as go

    return go


def reward_heatmap(
    image: Any,
    reward_pixel: np.ndarray,
    reward_token: np.ndarray | None = None,
    view: str = "pixel",
    boxes: Sequence[tuple[tuple[int, int, int, int], str]] = (),
    highlight: int | None = None,
    title: str = "",
    opacity: float = 0.55,
) -> Any:
    """The image with the reward map laid over it.

    ``reward_pixel``: ``(H, W)``; ``reward_token``: ``(H/t, W/t)``, drawn as ``t``x``t`` cells when
    ``view="token"``. ``boxes``: ``(box, label)`` pairs outlined on top; ``highlight`` indexes the one drawn bold.
    Hovering shows the reward value under the cursor.
    """
    go = _go()
    if view not in ("pixel", "token"):
        raise ValueError(f"view={view!r}: choose 'pixel' or 'token'")
    height, width = reward_pixel.shape
    rgb = np.asarray(image.convert("RGB"))
    fig = go.Figure()
    fig.add_trace(go.Image(z=rgb, hoverinfo="skip", name="image"))
    if view == "token":
        if reward_token is None:
            raise ValueError("the token view needs the token map")
        rows, cols = reward_token.shape
        cell_w, cell_h = width / cols, height / rows
        fig.add_trace(
            go.Heatmap(
                z=reward_token,
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
        fig.add_trace(
            go.Heatmap(
                z=reward_pixel,
                colorscale="RdYlGn",
                zmin=min(0.0, float(reward_pixel.min())),
                zmax=max(1.0, float(reward_pixel.max())),
                opacity=opacity,
                colorbar={"title": "reward"},
                hovertemplate="x %{x} y %{y}: reward %{z:.3f}<extra></extra>",
                name="pixel reward",
            )
        )
    for index, (box, label) in enumerate(boxes):
        x1, y1, x2, y2 = box
        bold = index == highlight
        fig.add_shape(
            type="rect",
            x0=x1 - 0.5,
            y0=y1 - 0.5,
            x1=x2 - 0.5,
            y1=y2 - 0.5,
            line={"color": "#1f1fff" if bold else "#222222", "width": 4 if bold else 1.5, "dash": "solid" if bold else "dot"},
        )
        fig.add_annotation(
            x=x1 - 0.5, y=y1 - 0.5, text=label, showarrow=False, xanchor="left", yanchor="bottom",
            font={"size": 12 if bold else 10, "color": "#1f1fff" if bold else "#222222"},
            bgcolor="rgba(255,255,255,0.7)",
        )
    fig.update_xaxes(range=[-0.5, width - 0.5], showgrid=False, constrain="domain")
    fig.update_yaxes(range=[height - 0.5, -0.5], showgrid=False, scaleanchor="x")
    fig.update_layout(title=title or None, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10}, height=420)
    return fig


def loss_curves(steps: Sequence[Mapping[str, Any]]) -> Any:
    """Total loss, reward term and constraint term against the global training step."""
    go = _go()
    fig = go.Figure()
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


def reward_distribution(values: Mapping[str, Sequence[float]]) -> Any:
    """Overlaid histograms of reward components (e.g. ``global``, ``region``, ``token weight``)."""
    go = _go()
    fig = go.Figure()
    for name, data in values.items():
        if len(data):
            fig.add_trace(go.Histogram(x=list(data), name=name, opacity=0.6, nbinsx=20))
    fig.update_layout(
        barmode="overlay", title="Reward distributions", xaxis_title="value", yaxis_title="count", height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def accuracy_by_category(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Grouped bars: accuracy per category, one bar per (round, measure).

    ``rows``: ``{"round": str, "measure": "referee" | "judge", "category": str, "accuracy": float}``.
    """
    go = _go()
    fig = go.Figure()
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
