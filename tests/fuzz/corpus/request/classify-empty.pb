
resnet20-fashion