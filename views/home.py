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
st.subheader("The pipeline")
st.caption("Ten stages, from raw text to a model that follows instructions; click one to open it.")
for row in (stages[:5], stages[5:]):
    cols = st.columns(len(row))
    for col, p in zip(cols, row):
        with col.container(border=True, height="stretch"):
            number, _, name = p.stage.partition(" · ")
            st.markdown(f"**{number}** · {p.chapter}")
            st.page_link(p.path, label=p.title, icon=p.icon)
            st.caption(name)

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
