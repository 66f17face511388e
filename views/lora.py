"""LoRA lab (appendix E): one layer's A, B and update ΔW; trainable-parameter counts; the merge check."""

import pandas as pd
import streamlit as st

from core.lora import (
    LoRALinear,
    apply_lora,
    lora_parameter_counts,
    lora_target_names,
    merge_lora,
    replace_linear_with_lora,
)
from core.lora_lab import (
    LORA_TARGET_SETS,
    book_lora_reference,
    lora_count_table,
    lora_layer_demo,
    merge_check,
)
from core.model import count_parameters
from ui.cache import active_model
from ui.figures_finetune import lora_matrix_heatmap, lora_shapes_figure
from ui.state import active_model_spec, describe_spec
from ui.widgets import guard, next_page_link, page_header, script_download, show_code

PATH = "views/lora.py"
STEPS = "lora_steps"  # session key: simulated steps taken with the current layer/rank/alpha

page_header(
    PATH,
    "LoRA freezes a pretrained weight W and learns only a low-rank update ΔW = B·A·(α/r), where A is r × in "
    "and B is out × r with a small rank r. Far fewer numbers train, B starts at zero so the adapted model "
    "starts *identical* to the base model, and after training the update can be merged into W for free.",
)

model = active_model()
st.caption(f"Model: **{describe_spec(active_model_spec())}** (change it in the sidebar). Nothing here changes "
           "it: LoRA wraps a read-only view of its weights.")
names = lora_target_names(model)
c = st.columns([3, 1, 1])
layer = c[0].selectbox("Layer", names, key="lora_layer", help="Every nn.Linear of the model LoRA could wrap.")
rank = int(c[1].number_input("Rank r", min_value=0, max_value=4096, value=8, key="lora_rank"))
alpha = float(c[2].number_input("Alpha α", min_value=0.0, max_value=4096.0, value=16.0, step=1.0,
                                key="lora_alpha", help="The update is scaled by α / r (the book: α = r = 16)."))

if st.session_state.get("lora_steps_for") != (layer, rank, alpha):  # new settings: start from B = 0 again
    st.session_state["lora_steps_for"], st.session_state[STEPS] = (layer, rank, alpha), 0
b = st.columns([1, 1, 3])
if b[0].button("Simulate a training step", icon=":material/fitness_center:", key="lora_step"):
    st.session_state[STEPS] += 1
if b[1].button("Reset B to zero", icon=":material/restart_alt:", key="lora_reset"):
    st.session_state[STEPS] = 0

demo = None
with guard("wrapping the layer in LoRA"):
    demo = lora_layer_demo(model, layer, rank, alpha, steps=st.session_state[STEPS])
if demo is not None:
    out_f, in_f, r = demo.out_features, demo.in_features, demo.rank
    st.markdown(f"**Shapes** — W: {out_f} × {in_f} · A: {r} × {in_f} · B: {out_f} × {r} · "
                f"ΔW = B·A·(α/r): {out_f} × {in_f} (scale α/r = {demo.scale:g})")
    m = st.columns(4)
    m[0].metric("Trainable in this layer with LoRA", f"{demo.lora_params:,}", help="r · (in + out)")
    m[1].metric("…with full fine-tuning", f"{demo.full_params:,}", help="in · out (bias not counted)")
    m[2].metric("max |ΔW|", f"{demo.max_abs_delta:.2e}")
    m[3].metric("rank of ΔW", "—" if demo.delta_rank is None else demo.delta_rank, help="Never more than r.")
    st.plotly_chart(lora_shapes_figure(out_f, in_f, r), width="stretch", key="lora_shapes")
    h = st.columns(3)
    h[0].plotly_chart(lora_matrix_heatmap(demo.A, f"A ({r} × {in_f})"), width="stretch", key="lora_A")
    h[1].plotly_chart(lora_matrix_heatmap(demo.B, f"B ({out_f} × {r})"), width="stretch", key="lora_B")
    h[2].plotly_chart(lora_matrix_heatmap(demo.delta, f"ΔW ({out_f} × {in_f})"), width="stretch", key="lora_dW")
    if demo.cropped:
        st.caption(f"Heatmaps show at most the first {demo.A.shape[1]} rows and columns.")
    if demo.steps == 0:
        st.info("B starts at **zero**, so ΔW = B·A·(α/r) = 0: the LoRA model computes exactly what the base model "
                "does, and fine-tuning starts from the pretrained behaviour. A is random (Kaiming-uniform, as in "
                "the book) so that B still gets a gradient. Press **Simulate a training step**.",
                icon=":material/info:")
    else:
        st.success(f"After {demo.steps} simulated step(s) on a random regression target, B ≠ 0 and ΔW ≠ 0. At the "
                   "first step |∇A| is 0 (B is zero, so A cannot affect the output yet) and only B moves.",
                   icon=":material/check_circle:")
        grads = pd.DataFrame(demo.grad_norms, index=pd.RangeIndex(1, demo.steps + 1, name="step"))
        st.dataframe(grads.reset_index(), hide_index=True, width="content")
    show_code(LoRALinear, lora_layer_demo, label="Show the code: the LoRA layer and this simulation")

st.subheader("Trainable parameters: LoRA vs full fine-tuning")
if demo is None:
    st.caption("Choose a valid rank and alpha above to see the counts and the merge check.")
else:
    with guard("counting parameters"):
        table = pd.DataFrame(lora_count_table(model.cfg, rank, alpha))
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "trainable with LoRA": st.column_config.NumberColumn(format="localized"),
            "full fine-tuning": st.column_config.NumberColumn(format="localized"),
            "share": st.column_config.NumberColumn("LoRA / full", format="percent")})
        st.caption(f"Counted for this model's architecture with rank {rank} on PyTorch's `meta` device (shapes, no "
                   "memory). Full fine-tuning trains every parameter, embeddings included.")
    with guard("computing the book's reference count"):
        ref = book_lora_reference()
        c = st.columns(2)
        c[0].metric("Book: GPT-2 small (2-class head), LoRA r = 16 on all linear layers", f"{ref['lora']:,}",
                    help="Appendix E: 'Total trainable LoRA parameters: 2,666,528'. Computed here, not typed in.")
        c[1].metric("…instead of full fine-tuning", f"{ref['full']:,}", help="The book: 124,441,346.")
    show_code(lora_parameter_counts, lora_count_table, replace_linear_with_lora,
              label="Show the code: counting LoRA's trainable parameters")

    st.subheader("Merge check")
    st.caption("A copy of the model gets LoRA on the chosen layers and random (non-zero) B matrices; then "
               "merge_lora adds each ΔW into its W. Merged and unmerged outputs must agree up to float rounding.")
    targets = st.selectbox("LoRA on", list(LORA_TARGET_SETS), key="lora_merge_targets")
    big = count_parameters(model) > 30_000_000  # a big model's copy costs seconds and memory: only on request
    checked = not big or st.button("Run the merge check", icon=":material/merge:", key="lora_merge_go")
    if not checked:
        st.caption("This model is large, so the check (it copies the model) runs only when you press the button.")
    else:
        with guard("running the merge check"):
            chk = merge_check(model, rank, alpha, LORA_TARGET_SETS[targets])
            m = st.columns(4)
            m[0].metric("Layers wrapped", chk["layers"])
            m[1].metric("max |LoRA − base| at init (B = 0)", f"{chk['init_diff']:.2e}")
            m[2].metric("max |LoRA − base| with random B", f"{chk['lora_vs_base']:.2e}")
            m[3].metric("max |merged − unmerged|", f"{chk['merge_diff']:.2e}",
                        help="Should be ~1e-6 (float32 rounding).")
    script_download("lora", {"spec": active_model_spec(), "layer": layer, "rank": rank, "alpha": alpha,
                             "steps": demo.steps, "merge_targets": targets, "merge_check": checked})
    show_code(apply_lora, merge_lora, merge_check, label="Show the code: wrapping, merging and the check")
next_page_link(PATH)
