"""Building blocks shared by the detector and the box refiner networks (PyTorch): conv+BN+ReLU, the
depthwise-separable residual block, and a multiply-accumulate counter."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(cin, cout, k=3, s=1, groups=1, dil=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, s, padding=dil * (k // 2), dilation=dil, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DWSep(nn.Module):
    """Depthwise kxk (+BN+ReLU) then pointwise 1x1 (+BN[+ReLU]); residual when shapes match."""

    def __init__(self, cin, cout, s=1, k=3, dil=1):
        super().__init__()
        self.dw = cbr(cin, cin, k, s, groups=cin, dil=dil)
        self.pw = cbr(cin, cout, 1, act=False)
        self.res = s == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        if self.res:
            y = y + x
        return F.relu(y)


def count_macs(model, input_shape):
    """Multiply-accumulates of every convolution and linear layer for one input of `input_shape`."""
    macs = [0]

    def hook(m, i, o):
        if isinstance(m, nn.Conv2d):
            macs[0] += o.numel() * m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        else:
            macs[0] += o.numel() // o.shape[-1] * m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(*input_shape))
    for h in hs:
        h.remove()
    return macs[0]
