"""Regenerate the built-in spam and instruction datasets from the templates and word lists below.

Every message, sentence and word list here was written for LLM Scratch Lab. The output files are committed, so
nothing is generated at runtime; this script only documents how they were made and lets anyone rebuild them
byte for byte (a fixed seed, no set iteration, sorted JSON keys)::

    python assets/datasets/make_builtin.py            # rewrite the files next to this script
    python assets/datasets/make_builtin.py --out DIR  # write them somewhere else (the tests compare)

Phone numbers, short codes, web addresses and company names in the spam messages are invented.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20240607
SPAM_FILE = "spam_builtin.tsv"
INSTRUCTIONS_FILE = "instructions_builtin.json"

# --------------------------------------------------------------------------------------------------- messages
NAMES = ["Sam", "Priya", "Tom", "Mia", "Jo", "Dan", "Aisha", "Ben", "Lucy", "Omar", "Kate", "Leo", "Nina",
         "Raj", "Ellie", "Marco", "Grandad", "Auntie Sue"]
TIMES = ["7", "half 6", "8:30", "6pm", "noon", "10", "quarter past 5", "9ish", "2", "11am"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "tomorrow", "tonight"]
PLACES = ["the station", "the usual place", "the park gate", "the library", "the supermarket", "the cinema",
          "the gym", "the bus stop", "the cafe on Mill Street", "your mum's", "the pub", "school"]
FOODS = ["pizza", "curry", "pasta", "fish and chips", "tacos", "a roast", "soup", "burgers", "noodles"]
ITEMS = ["milk", "bread", "eggs", "bin bags", "loo roll", "washing up liquid", "bananas", "teabags",
         "cat food", "batteries", "nappies", "onions"]
MINUTES = ["5", "10", "15", "20", "25"]

# Slots in braces are filled from the lists above; templates without slots appear once.
HAM = [
    "Running about {mins} mins late, sorry! Save me a seat",
    "Are we still on for {food} {day}?",
    "Can you grab some {item} on your way home? We're out",
    "Just landed, will call you when I'm through security",
    "Happy birthday {name}!! Hope you have a brilliant day x",
    "Meet you at {place} at {time}?",
    "Mum says dinner is at {time}, don't be late again",
    "Did you see the match last night? What an ending",
    "I think I left my keys at yours. Are you in later?",
    "Thanks for today, it was really lovely to see you",
    "Can't make it {day}, something's come up at work. Rain check?",
    "The meeting's moved to {time}, same room",
    "Have you fed the cat? She's acting like she's starving",
    "Good luck with the interview {day}! You'll be great",
    "{name} is picking the kids up today so no need",
    "Ok see you soon",
    "On my way, {mins} mins",
    "Sorry missed your call, in a meeting. Will ring after",
    "What time does your train get in?",
    "Traffic is terrible, might be a while",
    "Just got home. Shattered. Speak tomorrow?",
    "Don't forget it's bin day {day}",
    "Do you want anything from {place}? Going now",
    "How's your mum doing? Give her my love",
    "Landlord's coming round {day} at {time} to look at the boiler",
    "Can I borrow your drill this weekend?",
    "The doctor said it's just a sprain, nothing broken. Phew",
    "Fancy a walk later? Weather looks ok",
    "I'm outside",
    "Got the tickets! Row F, seats 12 and 13",
    "Haha that's brilliant, send me the video",
    "Is {name} coming {day} or not? Need to know for numbers",
    "Reminder: dentist {day} at {time}",
    "Can you send me the photos from the weekend?",
    "Love you, sleep well x",
    "Kids are finally asleep. Glass of wine?",
    "Shall I bring {food} or is that sorted?",
    "Your parcel came, I've put it in the shed",
    "Bus broke down, I'll be late for {place}",
    "Revision at {place} {day}? Bring your notes",
    "Thanks for the lift yesterday, I owe you one",
    "Have you finished the report? {name} is asking",
    "Lunch at {time}? I'm starving",
    "Can you call me when you get a sec, nothing urgent",
    "Just checking you got home ok",
    "Great news, {name} passed the driving test!",
    "Sorry I was grumpy this morning. Didn't sleep",
    "The plumber says {day} between {time} and 5",
    "Where did you put the remote?",
    "Be there in {mins}",
    "No way. Tell me everything later",
    "Mum wants to know if you're coming for Sunday lunch",
    "I'll pay you back for the tickets on Friday",
    "Can you pick up a birthday card for {name}?",
    "Football's cancelled {day}, the pitch is flooded",
    "Do you still have my umbrella?",
    "Train is delayed again. Typical",
    "Just saw your message, yes that works for me",
    "Congrats on the new job!! So proud of you",
    "Hope you feel better soon. Shout if you need anything",
    "We need to book the table for {day}, how many of us?",
    "Did you lock the back door?",
    "Swimming lesson is at {time} now, they changed it",
    "Not sure yet, let me check with {name} and get back to you",
    "Thanks, got it",
    "Nearly done here, home by {time}",
    "Can we have {food} instead? Not in the mood for {food2}",
    "{name} says hi and asks when you're next in town",
    "Left some {food} in the fridge for you, just heat it up",
    "Parking at {place} is a nightmare, I'll walk from the corner",
    "Pick you up at {time} {day}, wear something warm",
    "Can you water the plants while we're away?",
    "The wifi is down again, I've rung them",
    "Sorry, phone died. Back now",
    "Don't wait up, I'll be late",
]

# Prizes follow "a" or "your" in the templates.
PRIZES = ["£500 shopping voucher", "brand new laptop", "week in Spain for two", "£1,000 cash prize",
          "55 inch TV", "new smartphone", "$250 gift card", "family trip to Florida", "£2,000 voucher bundle"]
STAKES = ["£50", "£100", "£250", "$200", "£20"]
AMOUNTS = ["£250", "£1,500", "$3,000", "£5,000", "£480", "£120", "£750", "$900"]
FEES = ["£1.99", "£2.45", "$1.50", "£0.99", "£3.20"]
RATES = ["£1.50", "£2", "$1.99", "150p", "£3"]
COURIERS = ["ParcelGo", "SwiftShip", "DPX Express", "RoyalPost", "QuickDrop"]
SERVICES = ["email account", "cloud storage account", "streaming account", "online banking", "mobile account"]
GADGETS = ["smartwatch", "tablet", "pair of wireless headphones", "robot vacuum"]
DESTINATIONS = ["Paris", "the Maldives", "New York", "a Caribbean cruise", "Dubai"]
URL_WORDS = ["parcel", "track", "redeliver", "secure", "verify", "claim", "bonus", "reward", "refund",
             "login", "prize", "account"]
URL_ENDS = ["info", "top", "xyz", "co", "net", "online"]

SPAM = [
    "Congratulations! You have won a {prize}. Call {premium} now to claim. Calls cost {rate}/min",
    "URGENT: Your parcel could not be delivered. Pay the {fee} redelivery fee at {url}",
    "{courier}: your package is held at our depot due to unpaid postage. Update your details: {url}",
    "You have been selected for a FREE {gadget}! Reply YES to claim. Reply STOP to opt out",
    "Need cash fast? Loans up to {amount} approved in minutes, no credit checks. Text LOAN to {short}",
    "Your bank account has been suspended due to unusual activity. Verify now at {url}",
    "FINAL NOTICE: you are owed a tax refund of {amount}. Claim before midnight: {url}",
    "Invest {stake} today and earn {amount} in a week with our crypto trading bot! Join now {url}",
    "Bitcoin is about to explode! Our members made {pct}% last month. Get the signals: {url}",
    "Lonely tonight? Local singles want to chat! Text DATE to {short}. {rate} per msg, 18+ only",
    "WINNER!! Your number was drawn in our monthly prize draw. To claim your {prize} call {premium}",
    "Your mobile is due a FREE upgrade! Call {premium} to get the latest phone at no extra cost",
    "Someone tried to log in to your {service} from a new device. Not you? Secure it here: {url}",
    "You have 1 unclaimed voucher worth {amount}. Redeem at {url} before it expires today",
    "FREE ringtones! Text TONE to {short} for 3 new tones a week. {rate}/week. Send STOP to end",
    "Your subscription will renew at {amount}. To cancel, call {premium}",
    "We tried to call you about your accident claim. You could get up to {amount}. Reply CLAIM",
    "Pre-approved credit card with a {amount} limit! Apply in 2 mins: {url}",
    "Last chance! {pct}% off all designer watches today only at {url}",
    "Your {service} password expires today. Keep your account active: {url}",
    "Dear customer, your energy bill refund of {amount} is ready. Click {url} to receive it",
    "Mum I dropped my phone, this is my new number. Can you send me {amount}? I'll explain later",
    "Hi it's me, new number. Can you message me on WhatsApp? Need a favour urgently",
    "Earn {amount} a week working from home! No experience needed. Reply JOB to {short}",
    "Claim your {pct} free spins on Mega Slots now, no deposit needed: {url}",
    "You've won a trip to {dest}! Call {premium} to book your dates. T&Cs apply",
    "Quiz time! Answer 3 easy questions to win a {prize}. Text QUIZ to {short}. {rate}/msg",
    "Your number has won {amount} in the national SMS lottery. Reply with your bank details to claim",
    "Debt problems? A new government scheme can write off up to {pct}% of your debt. Reply INFO",
    "ALERT: your card ending {digits} has been blocked. Call {premium} immediately to unblock it",
    "You have a private voice message waiting. Call {premium} to listen. {rate}/min",
    "{courier}: your delivery is arriving today. Choose a time slot: {url}",
    "Thank you for your order of {amount}. If you did not make this purchase call {premium} now",
    "Lose 10kg in 2 weeks with our miracle pills! Order now at {url}",
    "You have been chosen to test the new {gadget}. Keep it for free! Register: {url}",
    "Double your money in 24 hours, guaranteed. Limited places. Text RICH to {short}",
    "Reminder: your {prize} is still waiting! Call {premium} before 5pm to arrange delivery",
    "Free entry into our weekly draw for a {prize}! Text WIN to {short}. Reply STOP to unsubscribe",
    "Your {service} has been locked. Confirm your identity within 24h or lose access: {url}",
]


def _fill(template: str, rng: random.Random) -> str:
    """Fill every slot of one template with a random choice (only the slots it uses, in a fixed order)."""
    food = rng.choice(FOODS)
    url = f"{rng.choice(URL_WORDS)}-{rng.choice(URL_WORDS)}.{rng.choice(URL_ENDS)}/{rng.randrange(16**4):04x}"
    values = {
        "name": rng.choice(NAMES), "time": rng.choice(TIMES), "day": rng.choice(DAYS),
        "place": rng.choice(PLACES), "food": food, "food2": rng.choice([f for f in FOODS if f != food]),
        "item": rng.choice(ITEMS), "mins": rng.choice(MINUTES),
        "prize": rng.choice(PRIZES), "amount": rng.choice(AMOUNTS), "fee": rng.choice(FEES),
        "rate": rng.choice(RATES), "courier": rng.choice(COURIERS), "service": rng.choice(SERVICES),
        "gadget": rng.choice(GADGETS), "stake": rng.choice(STAKES), "dest": rng.choice(DESTINATIONS),
        "url": url, "premium": f"0909 {rng.randrange(100, 1000)} {rng.randrange(1000, 10000)}",
        "short": str(rng.randrange(60000, 90000)),
        "pct": str(rng.choice([30, 50, 70, 80, 90, 100, 200, 300])),
        "digits": f"{rng.randrange(10000):04d}",
    }
    return template.format(**values)


def _messages(templates: list[str], copies: int, rng: random.Random) -> list[str]:
    """Up to ``copies`` distinct fillings per template (one for templates without slots)."""
    out: list[str] = []
    for template in templates:
        n = copies if "{" in template else 1
        seen: list[str] = []
        for _ in range(n * 4):  # a few extra tries, since two fillings can coincide
            text = _fill(template, rng)
            if text not in seen and text not in out:
                seen.append(text)
            if len(seen) == n:
                break
        out.extend(seen)
    return out


def make_spam(rng: random.Random) -> list[tuple[str, str]]:
    """About 215 ham and 150 spam messages (≈ 40 % spam), shuffled, as ``(label, text)`` pairs."""
    rows = [("ham", t) for t in _messages(HAM, 5, rng)] + [("spam", t) for t in _messages(SPAM, 4, rng)]
    rng.shuffle(rows)
    return rows


# ----------------------------------------------------------------------------------------------- instructions
UPPER = ["the cat sat on the mat", "good morning", "see you tomorrow", "the sky is blue", "open the window",
         "happy birthday", "time for tea", "the river is wide", "we love to read", "turn left at the bridge",
         "the bread is fresh", "close the door", "it is raining again", "a quiet morning",
         "the train is late", "bring your coat", "the lamp is on", "fish swim in the sea",
         "my dog likes walks", "thank you", "the shop opens at nine", "keep the change",
         "the garden is green", "stars shine at night", "ring the bell", "wash your hands", "the soup is hot",
         "all aboard", "the last bus", "read the letter"]
PLURALS = [("cat", "cats"), ("box", "boxes"), ("city", "cities"), ("child", "children"), ("mouse", "mice"),
           ("knife", "knives"), ("tooth", "teeth"), ("man", "men"), ("woman", "women"), ("foot", "feet"),
           ("sheep", "sheep"), ("bus", "buses"), ("baby", "babies"), ("leaf", "leaves"), ("goose", "geese"),
           ("house", "houses"), ("story", "stories"), ("church", "churches"), ("day", "days"),
           ("toy", "toys"), ("wolf", "wolves"), ("potato", "potatoes"), ("tomato", "tomatoes"),
           ("fish", "fish"), ("person", "people"), ("dish", "dishes"), ("key", "keys"), ("lady", "ladies"),
           ("hero", "heroes"), ("wife", "wives"), ("glass", "glasses"), ("ox", "oxen"), ("boat", "boats"),
           ("loaf", "loaves"), ("fox", "foxes"), ("berry", "berries"), ("shelf", "shelves"),
           ("watch", "watches"), ("bench", "benches"), ("deer", "deer"), ("puppy", "puppies"),
           ("island", "islands"), ("half", "halves"), ("piano", "pianos"), ("roof", "roofs")]
OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("happy", "sad"), ("fast", "slow"),
             ("early", "late"), ("full", "empty"), ("wet", "dry"), ("high", "low"), ("rich", "poor"),
             ("loud", "quiet"), ("win", "lose"), ("push", "pull"), ("day", "night"), ("strong", "weak"),
             ("thick", "thin"), ("first", "last"), ("buy", "sell"), ("clean", "dirty"), ("always", "never"),
             ("inside", "outside"), ("remember", "forget"), ("asleep", "awake"), ("cheap", "expensive")]
REVERSE = ["the boat is blue", "we walk to the river", "my sister plays the piano", "the baker sells bread",
           "birds sing in the morning", "the old dog sleeps", "she reads a long book", "the wind is cold",
           "they built a raft", "the ferry leaves at noon", "he mends the clock", "the market is busy",
           "rain falls on the roof", "the lamp turns all night", "children run in the park",
           "I like green tea", "the cat watches the gulls", "snow covers the hills", "we planted some beans",
           "the bus is full", "open the blue door", "the teacher wears yellow shoes", "apples grow on trees",
           "my friend writes letters", "the soup smells good", "the river flows to the sea",
           "a heron stands still", "the shop closes early", "the keeper climbs the stairs",
           "the night is quiet"]
CAPITALS = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"),
            ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
            ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Austria", "Vienna"),
            ("Greece", "Athens"), ("Hungary", "Budapest"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
            ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"), ("Thailand", "Bangkok"),
            ("Peru", "Lima"), ("Chile", "Santiago"), ("Argentina", "Buenos Aires"), ("Canada", "Ottawa"),
            ("Cuba", "Havana"), ("Russia", "Moscow"), ("Belgium", "Brussels"),
            ("the Netherlands", "Amsterdam"), ("Iceland", "Reykjavik"), ("Ghana", "Accra"),
            ("South Korea", "Seoul"), ("Vietnam", "Hanoi"), ("Australia", "Canberra"),
            ("New Zealand", "Wellington"), ("Turkey", "Ankara"), ("Mexico", "Mexico City")]
POSITIVE = [
    "I loved every minute of the film.", "The staff were kind and very helpful.",
    "What a beautiful morning for a walk!", "This is the best bread I have ever eaten.",
    "Thank you, the flowers are lovely.", "The concert was wonderful.", "Our holiday was relaxing and fun.",
    "She was delighted with her present.", "The garden looks amazing this year.", "I am so proud of you.",
    "Great service and a friendly smile.", "The children had a fantastic day.",
    "Everything worked perfectly.", "What a lovely surprise!", "The soup was warm and delicious.",
    "I enjoyed reading this book.", "He gave a brilliant speech.", "The view from the hill was stunning.",
    "I had a really good time.",
]
NEGATIVE = [
    "The food was cold and tasteless.", "The bus was late and the driver was rude.",
    "I waited two hours and nobody came.", "The room was dirty and smelled bad.",
    "My new phone broke after one day.", "I am tired of this awful weather.",
    "The instructions were confusing and useless.", "The shop ignored my complaint.",
    "The film was boring and far too long.", "The parcel arrived damaged.", "I regret buying these shoes.",
    "The coffee was bitter and expensive.", "The noise kept me awake all night.",
    "I feel let down by the whole team.", "The train was crowded and dirty.", "The app keeps crashing.",
    "This was a terrible idea.", "My order never arrived.", "The lesson was dull.",
]
MISSPELLED = [("recieve", "receive"), ("beleive", "believe"), ("tomorow", "tomorrow"),
              ("seperate", "separate"), ("definately", "definitely"), ("wich", "which"), ("untill", "until"),
              ("neccessary", "necessary"), ("occured", "occurred"), ("goverment", "government"),
              ("enviroment", "environment"), ("wierd", "weird"), ("calender", "calendar"),
              ("beggining", "beginning"), ("truely", "truly"), ("arguement", "argument"),
              ("adress", "address"), ("buisness", "business"), ("comming", "coming"), ("familar", "familiar"),
              ("garantee", "guarantee"), ("happend", "happened"), ("independant", "independent"),
              ("knowlege", "knowledge"), ("libary", "library"), ("noticable", "noticeable"),
              ("ocasion", "occasion"), ("reccomend", "recommend"), ("sucess", "success"),
              ("tounge", "tongue"), ("rythm", "rhythm"), ("embarass", "embarrass"), ("foriegn", "foreign"),
              ("grammer", "grammar"), ("freinds", "friends"), ("beatiful", "beautiful")]
PAST = [("I walk to the shop.", "I walked to the shop."), ("She eats an apple.", "She ate an apple."),
        ("We play in the park.", "We played in the park."), ("He writes a letter.", "He wrote a letter."),
        ("They go to school.", "They went to school."), ("The baby sleeps.", "The baby slept."),
        ("I see a heron.", "I saw a heron."), ("The dog runs fast.", "The dog ran fast."),
        ("She sings a song.", "She sang a song."), ("We bake bread.", "We baked bread."),
        ("He drinks tea.", "He drank tea."), ("The bell rings.", "The bell rang."),
        ("I buy some milk.", "I bought some milk."), ("They build a raft.", "They built a raft."),
        ("She reads the paper.", "She read the paper."), ("The boat sinks.", "The boat sank."),
        ("We catch a fish.", "We caught a fish."), ("He opens the door.", "He opened the door."),
        ("I think about you.", "I thought about you."), ("The wind blows.", "The wind blew."),
        ("She takes the bus.", "She took the bus."), ("We make soup.", "We made soup."),
        ("He finds his keys.", "He found his keys."), ("The children laugh.", "The children laughed."),
        ("I know the answer.", "I knew the answer."), ("They sell flowers.", "They sold flowers."),
        ("The sun rises.", "The sun rose."), ("She teaches maths.", "She taught maths."),
        ("We swim in the lake.", "We swam in the lake."), ("He fixes the clock.", "He fixed the clock."),
        ("I carry the basket.", "I carried the basket."), ("The cat hides.", "The cat hid."),
        ("They win the game.", "They won the game."), ("She drives to work.", "She drove to work."),
        ("We watch the ships.", "We watched the ships.")]
QUESTIONS = ["Is the shop open today?", "Where did you leave the keys?", "Can you hear the bells?",
             "What time does the ferry leave?", "Who baked this bread?", "Is it raining outside?",
             "Why is the river so high?", "Do you like green tea?", "How far is the station?",
             "Will the bus be late?", "Did the children enjoy the park?", "Are the apples ripe?",
             "When does the market close?", "Have you read the letter?", "Which door is open?",
             "Could you pass the salt?", "Is the soup hot?", "Where do the herons sleep?",
             "Does the lamp still work?", "Shall we walk to the river?"]

# Tasks whose answer is copied from the input: a small model trained from scratch can learn these in
# minutes (attention learns to copy), so a short fine-tune shows a clear before/after difference.
COPY_TASKS = [
    ("Repeat the text exactly.", lambda s: s),
    ("What is the first word of the sentence?", lambda s: s.split()[0]),
    ("What is the last word of the sentence?", lambda s: s.split()[-1].strip(".!?")),
]


def make_instructions(rng: random.Random) -> list[dict[str, str]]:
    """About 500 short records, scorable by exact match, shuffled so that every split sees every task."""
    recs: list[dict[str, str]] = []

    def add(instruction: str, input_: str, output: str) -> None:
        recs.append({"instruction": instruction, "input": input_, "output": output})

    for text in UPPER:
        add(rng.choice(["Convert the text to uppercase.", "Rewrite the text in capital letters."]), text,
            text.upper())
    for noun, plural in PLURALS:
        add(rng.choice(["Give the plural of the noun.", "What is the plural form of this word?"]), noun,
            plural)
    for a, b in OPPOSITES:  # both directions, since every word appears in only one pair
        for w, o in ((a, b), (b, a)):
            add(rng.choice(["Give the opposite of the word.", "What is the antonym of this word?"]), w, o)
    for sent in REVERSE:
        add("Reverse the order of the words.", sent, " ".join(reversed(sent.split())))
    for country, city in CAPITALS:
        if rng.random() < 0.5:
            add(f"What is the capital of {country}?", "", city)
        else:
            add("Name the capital city of the country.", country, city)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < 40:  # 40 distinct sums to ask about
        if (pair := (rng.randrange(1, 50), rng.randrange(1, 50))) not in pairs:
            pairs.append(pair)
    for a, b in pairs:
        if rng.random() < 0.5:
            add("Add the two numbers.", f"{a} and {b}", str(a + b))
        else:
            add(f"What is {a} plus {b}?", "", str(a + b))
    for sents, label in ((POSITIVE, "positive"), (NEGATIVE, "negative")):
        for sent in sents:
            add("Classify the sentiment as positive or negative.", sent, label)
    for wrong, right in MISSPELLED:
        add(rng.choice(["Correct the spelling of the word.", "Fix the spelling mistake."]), wrong, right)
    for present, past in PAST:
        add("Rewrite the sentence in the past tense.", present, past)
    sentences = REVERSE + UPPER + POSITIVE + NEGATIVE
    for instruction, answer in COPY_TASKS:
        for sent in rng.sample(sentences, 40):
            add(instruction, sent, answer(sent))
    statements = rng.sample([s for s in POSITIVE + NEGATIVE if not s.endswith("?")], len(QUESTIONS))
    for text, label in [(q, "yes") for q in QUESTIONS] + [(s, "no") for s in statements]:
        add("Is this sentence a question? Answer yes or no.", text, label)
    rng.shuffle(recs)
    return recs


def main(out_dir: Path | None = None) -> list[Path]:
    """Write both files into ``out_dir`` (default: this script's folder) and return their paths."""
    out = Path(out_dir) if out_dir is not None else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    spam = out / SPAM_FILE
    # newline="\n" so the bytes are the same on Windows; no header, as in the UCI file.
    with spam.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{label}\t{text}\n" for label, text in make_spam(rng))
    instructions = out / INSTRUCTIONS_FILE
    text = json.dumps(make_instructions(rng), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    instructions.write_text(text, encoding="utf-8", newline="\n")
    return [spam, instructions]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder to write into (default: this folder)")
    for path in main(parser.parse_args().out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
