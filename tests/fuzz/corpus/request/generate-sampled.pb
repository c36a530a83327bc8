
gpt2-kjvgem-n2"In the beginning5млL?8(E33s?HR
RLORD