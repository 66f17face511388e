"""The app's map: every page, its section, its place in the book's pipeline, and the page after it (no Streamlit here:
the router, the pages, the benchmarks and the tests all read the journey from this one list).

``app.py`` builds the navigation from this list and every page ends with a link to ``next_page``, so the order of
the journey is defined once, here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to the repository root, as st.Page and st.page_link want it
    title: str
    icon: str
    section: str
    stage: str  # where it sits in the book's pipeline
    chapter: str
    summary: str


PAGES: tuple[PageInfo, ...] = (
    PageInfo("views/home.py", "Start here", ":material/home:", "Start", "Overview", "",
             "The pipeline at a glance and a guided path through it."),
    PageInfo("views/tokenizer.py", "Tokenizer", ":material/text_fields:", "Text", "1 · Tokenization", "Ch. 2.2–2.5",
             "Turn text into token ids and back; train your own byte-pair encoding."),
    PageInfo("views/sampling.py", "Sampling windows", ":material/view_week:", "Text", "2 · Data sampling",
             "Ch. 2.6", "Cut the token stream into input windows and their shifted targets."),
    PageInfo("views/embeddings.py", "Embeddings", ":material/scatter_plot:", "Model", "3 · Embeddings",
             "Ch. 2.7–2.8", "Token and position vectors: what the model actually receives."),
    PageInfo("views/attention.py", "Attention", ":material/hub:", "Model", "4 · Attention", "Ch. 3",
             "From plain dot products to causal multi-head attention, step by step."),
    PageInfo("views/architecture.py", "Architecture", ":material/account_tree:", "Model", "5 · GPT architecture",
             "Ch. 4", "LayerNorm, GELU, shortcuts and blocks; parameters, memory and FLOPs."),
    PageInfo("views/pretrain.py", "Pretraining", ":material/monitoring:", "Training", "6 · Pretraining", "Ch. 5",
             "Train a GPT from scratch and watch the loss fall."),
    PageInfo("views/generate.py", "Generation", ":material/edit_note:", "Training", "7 · Decoding", "Ch. 5.3",
             "Temperature, top-k and top-p: how the next token is chosen."),
    PageInfo("views/lora.py", "LoRA lab", ":material/tune:", "Fine-tuning", "8 · LoRA", "Appendix E",
             "Low-rank adapters: few trainable parameters, same outputs at init."),
    PageInfo("views/classify.py", "Classification", ":material/mark_email_unread:", "Fine-tuning",
             "9 · Classification fine-tuning", "Ch. 6", "Fine-tune a GPT to tell spam from ham."),
    PageInfo("views/instruct.py", "Instructions", ":material/chat:", "Fine-tuning", "10 · Instruction fine-tuning",
             "Ch. 7", "Fine-tune a GPT to follow instructions (Alpaca format)."),
)


# The guided path's suggested settings: what to do on each page and about how long it takes on a 2-core CPU
# (training times measured by bench/guided_path.py with the settings in core.guided; see the README's table).
GUIDE: dict[str, tuple[int, str]] = {
    "views/tokenizer.py": (1, "Keep the sample text; in **Tokenizer** compare **GPT-2 (tiktoken BPE)** with "
                              "**characters**, then pick **your own BPE (train it)**, set **Vocabulary size** to "
                              "512, press **Train** and read its first merges."),
    "views/sampling.py": (1, "**Context length** 8, **Stride** 4: step through a few windows with **Window** and "
                             "check that each target is its input shifted by one."),
    "views/embeddings.py": (1, "Look up a few words in **Sentence**; note the shapes of the token, position and "
                               "summed embeddings."),
    "views/attention.py": (2, "Follow the four steps on the six-word example, then open the **3 · Causal + dropout** "
                              "tab: the weights above the diagonal are zero."),
    "views/architecture.py": (1, "In **Architecture**, compare **tiny** with **gpt2-small**: where do the parameters "
                                 "go?"),
    "views/pretrain.py": (4, "Keep the defaults (**Model preset** mini, built-in stories, **Steps** 200, "
                             "**Learning rate** 1e-3) and press **Start training**: about 3½ minutes. Then **Use "
                             "this run as the active model**: the samples turn from noise into words."),
    "views/generate.py": (1, "**Generate** from your trained model at **Temperature** 0, then 1.5, and compare."),
    "views/lora.py": (1, "**Rank r** 8 on one **Layer**: see the trainable count fall and the merge check agree."),
    "views/classify.py": (1, "Built-in spam set, **What trains**: last block + final norm + head, the default 5 "
                             "epochs: test accuracy well above the majority baseline."),
    "views/instruct.py": (2, "Built-in set with the suggested settings (**Mask the prompt**, **Max steps** 400): "
                             "compare the answers and the score before and after."),
}
# Controls the guide names that a page draws only after an earlier step (a finished run, a chosen option), and
# the module that draws them.
GUIDE_LATER = {"Use this run as the active model": "ui/run_dashboard.py", "Vocabulary size": "views/tokenizer.py",
               "Train": "views/tokenizer.py"}


def page_info(path: str) -> PageInfo:
    for info in PAGES:
        if info.path == path:
            return info
    raise KeyError(path)


def next_page(path: str) -> PageInfo | None:
    """The page that follows ``path`` on the guided path, or None at the end."""
    paths = [p.path for p in PAGES]
    i = paths.index(path)
    return PAGES[i + 1] if i + 1 < len(PAGES) else None
