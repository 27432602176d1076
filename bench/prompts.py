"""Throughput prompts: each about 190-200 tokens in the chat template, asking for a long answer.

Speed is compared at equal work, so every request should generate all of its new tokens. The
engine has no "ignore EOS" switch (it serves users, not benchmarks), so these prompts ask for
long, open-ended writing that SmolLM2-135M does not finish early; the benchmark counts the
tokens actually generated and reports any request that stopped short. Different prompts per
concurrent request keep rows of a batch from being identical.
"""

from __future__ import annotations

__all__ = ["LONG_PROMPTS", "TTFT_PROMPT"]

_TAIL = (
    " Write at least six long paragraphs, use plain prose without lists or headings, and give"
    " concrete examples, numbers and small anecdotes in every paragraph so the reader can"
    " picture each point clearly. The readers are curious adults new to the subject, so explain"
    " every technical word the first time you use it, connect"
    " each paragraph to the one before it, and finish with a short reflection on why the topic"
    " still matters to people today."
)

LONG_PROMPTS: tuple[str, ...] = tuple(
    body + _TAIL
    for body in (
        "I am preparing a talk for a local library club about the history of the printing press."
        " Explain in detail how Johannes Gutenberg's invention worked, how movable type, ink and"
        " paper came together, why it spread so quickly across Europe in the fifteenth and"
        " sixteenth centuries, how it changed religion, science and politics, and what ordinary"
        " people of that time would have noticed first in their daily lives.",
        "My grandmother wants to start a vegetable garden on a small sunny balcony in a city"
        " apartment. Describe step by step how she should choose containers, soil and compost,"
        " which vegetables and herbs grow well in pots, how often to water and feed them in hot"
        " summer weather, how to deal with pests without strong chemicals, and how to plan the"
        " seasons so that something is ready to harvest almost every month of the year.",
        "Our school newspaper is running a series on how everyday technology works. Explain how a"
        " refrigerator keeps food cold, covering the refrigerant cycle, the compressor, the"
        " condenser coils at the back, the expansion valve and the evaporator inside, why the"
        " back of the fridge feels warm, how the thermostat decides when to run, and what people"
        " can do at home to make their fridge use less electricity and last longer.",
        "I am writing a beginner's guide for people who have just adopted a young dog from a"
        " shelter. Describe in detail how to prepare the home before the dog arrives, how to"
        " build a daily routine of feeding, walks and rest, how to teach simple commands with"
        " rewards and patience, how to handle fear, barking and chewing, and how to know when it"
        " is time to ask a veterinarian or a professional trainer for help.",
        "For a geography class, describe the water cycle as a long story that follows a single"
        " drop of water. Start in the ocean, then follow evaporation, the formation of clouds,"
        " rain falling on mountains, rivers and lakes, water soaking into the ground and being"
        " taken up by plants, and finally the journey back to the sea, explaining along the way"
        " how the sun, wind and temperature drive every stage of the journey.",
        "A friend is nervous about running her first marathon next spring and asked me for a"
        " detailed plan. Explain how she should build up her weekly distance over five months,"
        " why easy runs, long runs and rest days all matter, what to eat and drink before and"
        " during long training runs, how to choose shoes and avoid common injuries, and how to"
        " pace herself on race day so that she still feels strong in the last ten kilometres.",
        "I run a small bakery and want to teach new staff how bread is made."
        " Describe in detail the role of flour, water, salt and yeast, what happens during mixing"
        " and kneading, why dough needs time to rise and how temperature changes that time, how"
        " loaves are shaped and scored, what happens to the crust and crumb inside a hot oven,"
        " and which common mistakes make bread dense, flat or too dry to enjoy.",
        "For a museum audio guide, tell the story of how people first learned to navigate the"
        " open ocean. Describe how Polynesian sailors read stars, waves, winds and birds, how"
        " later European sailors used the compass, the astrolabe and the sextant, why measuring"
        " longitude was so hard until accurate clocks were built, and how all of this finally"
        " led to the satellite navigation systems that we carry in our phones today.",
    )
)

# Time to first token on a long prompt (~1,050 tokens in SmolLM2's and Qwen2.5's templates):
# six of the requests above in one message, so the prefill is all real text.
TTFT_PROMPT = (
    "Readers sent me these requests this week:\n\n"
    + "\n\n".join(LONG_PROMPTS[:6])
    + "\n\nWhich request should I answer first, and why?"
)
