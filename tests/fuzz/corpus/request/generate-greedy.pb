
gpt2-kjv"And God said((