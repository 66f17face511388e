"""Regenerate the built-in corpus's long part, ``assets/corpus/very_short_stories.txt``: short, plain stories.

The three hand-written pieces of the built-in corpus hold about 8,000 GPT-2 tokens: a small model reads them
thirty times over in a few minutes and learns them by heart instead of learning English. This script writes a
few thousand short stories from the plots, sentences and word lists below (all written for LLM Scratch Lab), so
that the guided pretraining run reads each token about once and its samples become words and phrases that carry
over to new text. The file is committed; nothing is generated at runtime. A fixed seed and lists (never sets)
make the output identical on every machine::

    python assets/datasets/make_stories.py             # rewrite assets/corpus/very_short_stories.txt
    python assets/datasets/make_stories.py --out FILE  # write it somewhere else (the tests compare)
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SEED = 20241202
N_STORIES = 1500
TITLE = "Very Short Stories"  # a title line, like the hand-written pieces
OUT = Path(__file__).resolve().parent.parent / "corpus" / "very_short_stories.txt"

# (name, pronoun, possessive, what they are)
PEOPLE = [
    ("Lily", "she", "her", "a little girl"), ("Tom", "he", "his", "a little boy"),
    ("Mia", "she", "her", "a girl who loved to run"), ("Ben", "he", "his", "a boy with red boots"),
    ("Anna", "she", "her", "a girl who lived by the sea"), ("Sam", "he", "his", "a boy who liked to draw"),
    ("Rosa", "she", "her", "an old woman with a big garden"), ("Jack", "he", "his", "a small boy with a big smile"),
    ("Nora", "she", "her", "a girl who asked many questions"), ("Leo", "he", "his", "a boy who lived on a farm"),
    ("Ella", "she", "her", "a girl with a yellow coat"), ("Max", "he", "his", "a brave little dog"),
    ("Pip", "he", "his", "a small grey mouse"), ("Daisy", "she", "her", "a kind brown cow"),
    ("Ollie", "he", "his", "a young fox"), ("Ruby", "she", "her", "a curious cat"),
    ("Finn", "he", "his", "a boy who wanted to be a sailor"), ("Grace", "she", "her", "a girl who loved books"),
    ("Old Joe", "he", "his", "a fisherman with a white beard"), ("Kit", "she", "her", "a little rabbit"),
    ("Hugo", "he", "his", "a baker in a small town"), ("Ivy", "she", "her", "a girl who lived in a tall house"),
    ("Theo", "he", "his", "a boy who was afraid of the dark"), ("Luna", "she", "her", "a sleepy owl"),
]
FRIENDS = ["Mum", "Dad", "Grandma", "Grandpa", "a friend from school", "the kind neighbour", "the old dog",
           "a kind man", "a little bird", "the farmer", "the teacher", "a girl from next door", "a boy from school",
           "Aunt May"]
PLACES = ["the park", "the forest", "the garden", "the beach", "the village", "the hill", "the market",
          "the river", "the farm", "the school", "the library", "the meadow", "the harbour", "the town square"]
THINGS = ["ball", "kite", "red hat", "little boat", "shiny stone", "blue cup", "toy train", "picture book",
          "wooden horse", "yellow scarf", "silver key", "paper star", "green umbrella", "tiny bell"]
HIDING = ["under a big tree", "behind the old shed", "in the tall grass", "next to the pond", "under the bench",
          "in a pile of leaves", "by the garden gate", "inside an empty box", "on top of the wall", "near the bridge"]
FOODS = ["soup", "bread", "apple pie", "pancakes", "a cake", "biscuits", "porridge", "a big salad", "jam tarts"]
SKILLS = [("swim", "in the lake"), ("ride a bike", "on the path"), ("climb a tree", "in the garden"),
          ("fly a kite", "on the hill"), ("bake bread", "in the kitchen"), ("read a long book", "by the fire"),
          ("sing a song", "at school"), ("catch a fish", "at the river"), ("whistle", "on the way home")]
FEELINGS_GOOD = ["happy", "proud", "glad", "excited", "warm inside"]
FEELINGS_BAD = ["sad", "worried", "scared", "upset", "lonely"]
WEATHER = [("It was a rainy day", "the rain stopped"), ("It was a cold, windy day", "the wind went quiet"),
           ("It was a hot summer day", "the sun went down"), ("Snow was falling all morning", "the snow stopped"),
           ("The sky was grey and dark", "the clouds went away")]
ANIMALS = [("a small bird", "its wing was hurt"), ("a little kitten", "it was stuck in a tree"),
           ("a baby duck", "it had lost its mother"), ("a tired puppy", "it could not find its home"),
           ("a tiny frog", "it was far from the pond"), ("a young hedgehog", "it was very hungry")]
ENDINGS = ["From that day on, {n} always remembered what {p} had learned.", "It was the best day {p} ever had.",
           "That night, {n} went to bed with a big smile.", "And {p} never forgot that day.",
           "After that, {n} and {f} were the best of friends.", "{N} knew {p} could do hard things now."]


def _fill(template: str, **slots: str) -> str:
    text = template.format(**slots)
    return text[0].upper() + text[1:]


def _lost(r: random.Random, n: str, p: str, pos: str, who: str) -> list[str]:
    thing, place, hide, friend = r.choice(THINGS), r.choice(PLACES), r.choice(HIDING), r.choice(FRIENDS)
    bad, good = r.choice(FEELINGS_BAD), r.choice(FEELINGS_GOOD)
    other = r.choice([h for h in HIDING if h != hide])
    return [
        r.choice(["{n} had a {t} that {p} loved very much.", "{n} had a favourite {t}.",
                  "Every day, {n} played with {pos} {t}."]),
        r.choice(["One day, {p} took it to {pl}.", "One morning, {n} went to {pl} with {pos} {t}.",
                  "On a sunny afternoon, {p} carried it all the way to {pl}."]),
        r.choice(["When it was time to go home, the {t} was gone.", "But when {p} looked down, the {t} was not "
                  "there.", "Then {p} saw that {pos} {t} was missing."]),
        r.choice(["{N} felt {bad}.", "{N} was very {bad} and wanted to cry.", "{N} sat down and felt {bad}."]),
        r.choice(["{F} came by and asked, \"What is wrong?\"", "Then {f} saw {n} and came to help."]),
        r.choice(["They looked {other}, but the {t} was not there.", "First they looked {other}. Nothing."]),
        r.choice(["At last, {n} found it {hide}!", "Then {f} pointed and said, \"Look, there it is, {hide}!\""]),
        r.choice(["{N} hugged the {t} and felt {good}.", "{N} was so {good}. \"Thank you!\" {p} said."]),
    ], dict(t=thing, pl=place, hide=hide, other=other, f=friend, F=friend[0].upper() + friend[1:], bad=bad,
            good=good)


def _skill(r: random.Random, n: str, p: str, pos: str, who: str) -> list[str]:
    (skill, where), friend, good, bad = r.choice(SKILLS), r.choice(FRIENDS), r.choice(FEELINGS_GOOD), \
        r.choice(FEELINGS_BAD)
    tries = r.choice(["two", "three", "four", "five"])
    return [
        r.choice(["{N} wanted to learn to {s}.", "More than anything, {n} wanted to {s}."]),
        r.choice(["The first time {p} tried {wh}, it did not work.", "{N} tried {w}, but it was very hard."]),
        r.choice(["{N} felt {bad} and wanted to stop.", "\"I can't do it,\" {n} said, and {p} felt {bad}."]),
        r.choice(["{F} said, \"Try again. Everyone learns slowly at first.\"", "{F} smiled and said, \"Go "
                  "slowly. You can do it.\""]),
        r.choice(["So {n} tried again, {x} more times.", "{N} tried again and again, {x} more times."]),
        r.choice(["At last, {p} could {s}!", "And then, one morning, {n} could {s} all by {self}."]),
        r.choice(["{N} felt so {good}.", "{N} laughed and felt {good}."]),
    ], dict(s=skill, wh=where, f=friend, F=friend[0].upper() + friend[1:], good=good, bad=bad, x=tries,
            self="herself" if p == "she" else "himself")


def _animal(r: random.Random, n: str, p: str, pos: str, who: str) -> list[str]:
    (animal, trouble), place, friend, good = r.choice(ANIMALS), r.choice(PLACES), r.choice(FRIENDS), \
        r.choice(FEELINGS_GOOD)
    return [
        r.choice(["One day, {n} was walking near {pl}.", "One morning, {n} went out to {pl}."]),
        r.choice(["There {p} saw {a}.", "Under a bush, {p} found {a}."]),
        r.choice(["{N} could see that {tr}.", "The poor thing was shaking, because {tr}."]),
        r.choice(["{N} picked it up very gently.", "{N} sat down next to it and spoke softly."]),
        r.choice(["{P} took it home and asked {f} for help.", "{P} ran to {f}, who knew what to do."]),
        r.choice(["They gave it water and a warm place to sleep.", "They made a little bed for it in a box."]),
        r.choice(["After a few days, it was strong again.", "Soon it was well, and it was time to let it go."]),
        r.choice(["{N} watched it go and felt {good}.", "{N} waved goodbye. {P} felt {good}."]),
    ], dict(a=animal, tr=trouble, pl=place, f=friend, good=good, P=p.capitalize())


def _cooking(r: random.Random, n: str, p: str, pos: str, who: str) -> list[str]:
    food, friend, good = r.choice(FOODS), r.choice(FRIENDS), r.choice(FEELINGS_GOOD)
    guest = r.choice([f for f in FRIENDS if f != friend])
    return [
        r.choice(["{N} and {f} wanted to make {fd}.", "One afternoon, {f} said, \"Let's make {fd}!\""]),
        r.choice(["First they washed their hands.", "They put on aprons and got out a big bowl."]),
        r.choice(["{N} mixed everything with a wooden spoon.", "{N} helped to stir, slowly and carefully."]),
        r.choice(["Some of it fell on the floor, and they both laughed.", "It was messy, but it was fun."]),
        r.choice(["Soon the kitchen smelled very good.", "While they waited, the whole house smelled warm."]),
        r.choice(["They shared the {fd} with {g}.", "When it was ready, they took some to {g}."]),
        r.choice(["Everyone said it was the best {fd} ever.", "{N} felt {good}, because {p} had helped."]),
    ], dict(fd=food, f=friend, g=guest, good=good)


def _weather(r: random.Random, n: str, p: str, pos: str, who: str) -> list[str]:
    (start, change), friend, place, good, bad = r.choice(WEATHER), r.choice(FRIENDS), r.choice(PLACES), \
        r.choice(FEELINGS_GOOD), r.choice(FEELINGS_BAD)
    return [
        "{st}.",
        r.choice(["{N} wanted to go to {pl}, but {p} had to stay inside.", "{N} looked out of the window and "
                  "felt {bad}."]),
        r.choice(["\"There is nothing to do,\" {n} said.", "{N} did not know what to do all day."]),
        r.choice(["Then {f} had an idea. \"Let's build a den!\"", "Then {f} found an old box of games."]),
        r.choice(["They played all morning and forgot about the weather.", "They laughed so much that the time "
                  "went fast."]),
        r.choice(["In the afternoon, {ch}.", "Later, {ch}, and the sky was bright."]),
        r.choice(["So they went out to {pl} together.", "{N} put on {pos} boots and ran outside to {pl}."]),
        r.choice(["It was a good day after all, and {n} felt {good}.", "{N} felt {good}."]),
    ], dict(st=start, ch=change, f=friend, F=friend[0].upper() + friend[1:], pl=place, good=good, bad=bad)


def _trip(r: random.Random, n: str, p: str, pos: str, who: str) -> list[str]:
    place, friend, thing, good = r.choice(PLACES), r.choice(FRIENDS), r.choice(THINGS), r.choice(FEELINGS_GOOD)
    seen = r.choice(["a big ship", "a field of flowers", "an old castle", "a red tractor", "a rainbow",
                     "a family of ducks", "a man selling ice cream", "a tall lighthouse"])
    return [
        r.choice(["On Saturday, {n} and {f} went to {pl}.", "One summer morning, {f} took {n} to {pl}."]),
        r.choice(["{N} brought {pos} {t}.", "{N} packed a bag with {pos} {t} and some lunch."]),
        r.choice(["On the way, they saw {sn}.", "When they got there, {n} saw {sn}."]),
        r.choice(["\"Look!\" {n} said. \"I have never seen that before.\"", "{N} stopped and looked for a long "
                  "time."]),
        r.choice(["They ate their lunch on the grass.", "They sat down and had something to eat."]),
        r.choice(["Then it was time to go home.", "When the sun was low, they walked back home."]),
        r.choice(["{N} was tired but {good}.", "{N} told everyone about {sn} and felt {good}."]),
    ], dict(pl=place, f=friend, t=thing, sn=seen, good=good)


def _afraid(r: random.Random, n: str, p: str, pos: str, who: str) -> list[str]:
    fear = r.choice(["the dark", "big dogs", "the deep water", "thunder", "the tall slide", "the first day at "
                     "school"])
    friend, good = r.choice(FRIENDS), r.choice(FEELINGS_GOOD)
    return [
        r.choice(["{N} was afraid of {fr}.", "There was one thing {n} did not like: {fr}."]),
        r.choice(["Every time {p} thought about it, {pos} tummy felt funny.", "{N} tried not to think about it."]),
        r.choice(["One evening, {p} told {f}.", "One day, {n} asked {f}, \"Were you ever scared?\""]),
        r.choice(["{F} said, \"Yes. Everyone is scared of something.\"", "{F} held {pos} hand and listened."]),
        r.choice(["\"Let's do it together, one small step at a time,\" said {f}.", "\"Being brave means you are "
                  "scared, but you try anyway,\" said {f}."]),
        r.choice(["So they did, one small step at a time.", "{N} took a deep breath and tried."]),
        r.choice(["It was not so bad after all.", "It was easier than {p} thought."]),
        r.choice(["{N} felt {good}.", "{N} smiled. {P} was not afraid any more."]),
    ], dict(fr=fear, f=friend, F=friend[0].upper() + friend[1:], good=good, P=p.capitalize())


PLOTS = [_lost, _skill, _animal, _cooking, _weather, _trip, _afraid]
OPENINGS = ["Once upon a time, there was {w}. {P} was called {n}.", "There was once {w}, and {pos} name was {n}.",
            "{N} was {w}.", "In a small house near {pl}, there lived {w}. {P} was called {n}."]


def story(r: random.Random) -> str:
    n, p, pos, who = r.choice(PEOPLE)
    plot = r.choice(PLOTS)
    beats, slots = plot(r, n, p, pos, who)
    slots.setdefault("f", r.choice(FRIENDS))
    common = dict(n=n, N=n, p=p, P=p.capitalize(), pos=pos, w=who, pl=slots.get("pl", r.choice(PLACES)))
    lines = [r.choice(OPENINGS)] + beats + [r.choice(ENDINGS)]
    return " ".join(_fill(line, **{**common, **slots}) for line in lines)


def build(n_stories: int = N_STORIES, seed: int = SEED) -> str:
    r = random.Random(seed)
    return TITLE + "\n\n" + "\n\n".join(story(r) for _ in range(n_stories)) + "\n"


def main(out: Path | None = None) -> Path:
    """Write the stories to ``out`` (default: ``assets/corpus/very_short_stories.txt``) and return the path."""
    target = Path(out) if out is not None else OUT
    target.write_bytes(build().encode("utf-8"))
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    main(parser.parse_args().out)
