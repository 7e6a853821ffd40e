"""Writes general_knowledge.jsonl: the forgetting guard's items (run: python make_items.py).

Short general-knowledge questions with four choices, written for workbench and released with it
under Apache-2.0 (see LICENSE here). Facts a general-purpose model knows before fine-tuning; a
fine-tune that makes it lose them has damaged more than it taught. The right answer's position
cycles through the four places, so a model that always picks one place scores 25%.
"""

from __future__ import annotations

import json
from pathlib import Path

# (question, right answer, three wrong answers)
ITEMS = [
    ("What is the capital of France?", "Paris", "Lyon", "Marseille", "Nice"),
    ("What is the capital of Japan?", "Tokyo", "Osaka", "Kyoto", "Nagoya"),
    ("What is the capital of Italy?", "Rome", "Milan", "Naples", "Turin"),
    ("What is the capital of Canada?", "Ottawa", "Toronto", "Vancouver", "Montreal"),
    ("What is the capital of Australia?", "Canberra", "Sydney", "Melbourne", "Perth"),
    ("What is the capital of Egypt?", "Cairo", "Alexandria", "Giza", "Luxor"),
    ("What is the capital of Spain?", "Madrid", "Barcelona", "Seville", "Valencia"),
    ("What is the capital of Germany?", "Berlin", "Munich", "Hamburg", "Frankfurt"),
    ("What is the capital of Kenya?", "Nairobi", "Mombasa", "Kisumu", "Nakuru"),
    ("What is the capital of Brazil?", "Brasilia", "Rio de Janeiro", "Sao Paulo", "Salvador"),
    ("Which planet is closest to the Sun?", "Mercury", "Venus", "Earth", "Mars"),
    ("Which planet is known as the Red Planet?", "Mars", "Jupiter", "Venus", "Saturn"),
    ("Which is the largest planet in the Solar System?", "Jupiter", "Saturn", "Neptune", "Earth"),
    ("What does the Moon orbit?", "the Earth", "the Sun", "Mars", "Jupiter"),
    ("What is the chemical symbol for water?", "H2O", "CO2", "O2", "NaCl"),
    ("What is the chemical symbol for gold?", "Au", "Ag", "Gd", "Go"),
    ("What is the chemical symbol for iron?", "Fe", "Ir", "In", "F"),
    ("Which gas do plants take in for photosynthesis?", "carbon dioxide", "oxygen", "nitrogen", "helium"),
    ("Which gas makes up most of the Earth's air?", "nitrogen", "oxygen", "carbon dioxide", "argon"),
    ("At what temperature does water boil at sea level, in degrees Celsius?", "100", "90", "50", "120"),
    ("At what temperature does water freeze, in degrees Celsius?", "0", "10", "-10", "32"),
    ("How many days are in a leap year?", "366", "365", "364", "360"),
    ("How many hours are in a day?", "24", "12", "20", "36"),
    ("How many minutes are in an hour?", "60", "100", "30", "90"),
    ("How many legs does a spider have?", "eight", "six", "four", "ten"),
    ("How many legs does an insect have?", "six", "eight", "four", "ten"),
    ("How many sides does a triangle have?", "three", "four", "five", "six"),
    ("How many sides does a hexagon have?", "six", "five", "seven", "eight"),
    ("What is 7 times 8?", "56", "54", "48", "64"),
    ("What is 12 plus 15?", "27", "25", "28", "37"),
    ("What is 100 minus 37?", "63", "73", "67", "53"),
    ("What is half of 50?", "25", "20", "30", "15"),
    ("What is the square root of 81?", "9", "8", "7", "81"),
    ("Which is the largest ocean on Earth?", "the Pacific", "the Atlantic", "the Indian", "the Arctic"),
    ("Which is the longest river in Africa?", "the Nile", "the Congo", "the Niger", "the Zambezi"),
    ("On which continent is the Sahara desert?", "Africa", "Asia", "Australia", "South America"),
    ("Which mountain is the highest above sea level?", "Mount Everest", "K2", "Mont Blanc", "Kilimanjaro"),
    ("Which animal is the largest mammal?", "the blue whale", "the elephant", "the giraffe", "the hippo"),
    ("Which animal is known for its black and white stripes?", "the zebra", "the lion", "the camel", "the wolf"),
    ("What do bees make?", "honey", "milk", "silk", "wax paper"),
    ("Which bird is a symbol of peace?", "the dove", "the crow", "the eagle", "the owl"),
    ("What is the young of a cat called?", "a kitten", "a puppy", "a calf", "a cub"),
    ("What is the young of a dog called?", "a puppy", "a kitten", "a foal", "a lamb"),
    ("Which organ pumps blood through the body?", "the heart", "the lungs", "the liver", "the brain"),
    ("Which organ do we breathe with?", "the lungs", "the heart", "the kidneys", "the stomach"),
    ("How many bones does an adult human have, roughly?", "206", "106", "306", "56"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare", "Charles Dickens", "Jane Austen", "Mark Twain"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", "Pablo Picasso", "Vincent van Gogh", "Claude Monet"),
    ("Who developed the theory of relativity?", "Albert Einstein", "Isaac Newton", "Galileo Galilei", "Charles Darwin"),
    ("Who proposed the theory of evolution by natural selection?", "Charles Darwin", "Gregor Mendel", "Louis Pasteur", "Isaac Newton"),
    ("In which year did the Second World War end?", "1945", "1939", "1918", "1960"),
    ("In which year did humans first land on the Moon?", "1969", "1959", "1979", "1989"),
    ("What is the main language spoken in Brazil?", "Portuguese", "Spanish", "French", "English"),
    ("What is the main language spoken in Mexico?", "Spanish", "Portuguese", "English", "French"),
    ("What is the currency of Japan?", "the yen", "the won", "the yuan", "the dollar"),
    ("What is the currency of the United Kingdom?", "the pound", "the euro", "the dollar", "the franc"),
    ("What colour do you get by mixing blue and yellow?", "green", "purple", "orange", "brown"),
    ("What colour do you get by mixing red and white?", "pink", "purple", "orange", "grey"),
    ("What is the opposite of hot?", "cold", "warm", "wet", "loud"),
    ("What is the opposite of up?", "down", "left", "over", "near"),
    ("Which word is a synonym of happy?", "glad", "sad", "angry", "tired"),
    ("Which word is a synonym of big?", "large", "small", "thin", "short"),
    ("What is the plural of child?", "children", "childs", "childes", "child"),
    ("What is the plural of mouse?", "mice", "mouses", "meese", "mouse"),
    ("What is the past tense of go?", "went", "goed", "gone", "going"),
    ("Which season comes after winter?", "spring", "summer", "autumn", "winter"),
    ("Which month has the fewest days?", "February", "April", "June", "November"),
    ("How many months are in a year?", "twelve", "ten", "eleven", "thirteen"),
    ("Which day comes after Monday?", "Tuesday", "Sunday", "Wednesday", "Friday"),
    ("What shape is a ball?", "a sphere", "a cube", "a cone", "a pyramid"),
    ("Which instrument has black and white keys?", "the piano", "the violin", "the drum", "the flute"),
    ("Which sport uses a bat and a ball and wickets?", "cricket", "tennis", "football", "golf"),
    ("What do you call frozen water?", "ice", "steam", "fog", "rain"),
    ("Where does the Sun rise?", "in the east", "in the west", "in the north", "in the south"),
    ("What force pulls objects toward the Earth?", "gravity", "magnetism", "friction", "wind"),
    ("What is the hardest natural material?", "diamond", "iron", "granite", "glass"),
    ("Which metal is liquid at room temperature?", "mercury", "iron", "copper", "aluminium"),
    ("What is the speed of light, roughly, in kilometres per second?", "300,000", "3,000", "30,000", "3,000,000"),
    ("What does a thermometer measure?", "temperature", "weight", "distance", "time"),
    ("What does a compass point towards?", "magnetic north", "the Sun", "the Moon", "the equator"),
]


def main() -> None:
    out = []
    for i, (q, right, *wrong) in enumerate(ITEMS):
        choices = list(wrong)
        pos = i % 4  # every letter is right equally often
        choices.insert(pos, right)
        out.append({"id": i, "question": q, "choices": choices, "answer": pos})
    path = Path(__file__).with_name("general_knowledge.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    print(f"{len(out)} items -> {path}")


if __name__ == "__main__":
    main()
