"""Start here: the pipeline as a picture and a guided path through the pages."""

import streamlit as st

from core.journey import GUIDE, PAGES

st.title("Start here")
st.markdown(
    "Build a GPT-style language model from scratch, one stage per page, and look at every tensor on the way. "
    "The pages follow Sebastian Raschka's *Build a Large Language Model (From Scratch)*; each one shows the real "
    "numbers and the `core` code that produced them."
)

stages = [p for p in PAGES if p.path != "views/home.py"]
dot = ["digraph pipeline {", 'rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#eef2ff", '
       'color="#4f46e5", fontname="Helvetica"]; edge [color="#6366f1"];']
for i, p in enumerate(stages):
    dot.append(f'p{i} [label="{p.stage}\\n{p.title}"];')
dot.append(" -> ".join(f"p{i}" for i in range(len(stages))) + ";")
dot.append("}")
st.graphviz_chart("\n".join(dot), width="stretch")

st.subheader("The guided path")
total = sum(minutes for minutes, _ in GUIDE.values())
st.markdown(
    f"Walk the pages in order; each ends with a link to the next. With the suggested settings the whole path — "
    f"from raw text to a model that follows instructions — takes about **{total} minutes** on a 2-core laptop CPU, "
    "training included. Every run is yours to change: the settings are a starting point."
)
for p in stages:
    minutes, todo = GUIDE.get(p.path, (0, ""))
    with st.container(border=True):
        left, right = st.columns([1, 3])
        left.page_link(p.path, label=p.title, icon=p.icon)
        left.caption(f"≈ {minutes} min" if minutes else "")
        right.markdown(f"**{p.stage}** · {p.chapter}  \n{p.summary}" + (f"  \n:material/flag: {todo}" if todo else ""))
