"""Plate reader network: small pure-conv CRNN (no RNN) with a CTC character head and a US-state head."""
import torch
import torch.nn as nn

from common import REGIONS, T_STEPS

N_CHARS = 37
N_STATES = 52
N_REGIONS = len(REGIONS) + 1


def cbr(cin, cout, k=3, s=1, p=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Res(nn.Module):
    """Residual 3x3 conv block (conv-BN-ReLU, conv-BN, add, ReLU)."""

    def __init__(self, c):
        super().__init__()
        self.a = cbr(c, c)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.b(self.a(x)))


class Reader(nn.Module):
    """v2: wider body with a residual block at 12x40 and at 6x40, wider sequence features, and a separate
    state branch on the 6x40 map (the state name is a small word anywhere on the plate, so the state head
    gets its own conv + global avg/max pooling instead of sharing the per-column CTC features)."""

    def __init__(self, width=96, c=(16, 32, 48, 64), sw=64):
        super().__init__()
        self.body = nn.Sequential(
            cbr(1, c[0], s=2),                   # 24x80
            cbr(c[0], c[1]),
            nn.MaxPool2d(2),                     # 12x40
            cbr(c[1], c[2]),
            cbr(c[2], c[3], s=(2, 1)),           # 6x40
            Res(c[3]),
        )
        self.collapse = cbr(c[3], width, k=(6, 1), p=0)  # 1x40: full-height column features
        self.seq1 = cbr(width, width, k=(1, 3), p=(0, 1))
        self.seq2 = nn.Sequential(nn.Conv2d(width, width, (1, 3), 1, (0, 2), dilation=(1, 2), bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.seq3 = nn.Sequential(nn.Conv2d(width, width, (1, 3), 1, (0, 4), dilation=(1, 4), bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.chars = nn.Conv2d(width, N_CHARS, 1)
        self.sbranch = cbr(c[3], sw, s=(1, 2))           # 6x20
        self.pool_avg = nn.AvgPool2d((6, T_STEPS // 2))
        self.pool_max = nn.MaxPool2d((6, T_STEPS // 2))
        self.state = nn.Linear(2 * sw, N_STATES)
        self.region = nn.Linear(2 * sw, N_REGIONS)
        self.sw = sw
        self.width = width

    def forward(self, x):
        """x [N,1,48,160] -> char logits [N,40,37], state logits [N,52], region logits [N,67]."""
        b = self.body(x)
        f = self.collapse(b)
        s = f + self.seq1(f)
        s = s + self.seq2(s)
        s = s + self.seq3(s)
        c = self.chars(s).reshape(-1, N_CHARS, T_STEPS).transpose(1, 2)
        g = self.sbranch(b)
        g = torch.cat([self.pool_avg(g), self.pool_max(g)], 1).reshape(-1, 2 * self.sw)
        return c, self.state(g), self.region(g)


class Exported(nn.Module):
    """ONNX wrapper: softmax probabilities as CONTRACT.md requires."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        c, s, r = self.net(image)
        return torch.softmax(c, -1), torch.softmax(s, -1), torch.softmax(r, -1)


def count_macs(net):
    """Multiply-accumulates for one 1x48x160 crop (convs + linear)."""
    macs = []

    def hook(m, i, o):
        if isinstance(m, nn.Conv2d):
            macs.append(o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
        elif isinstance(m, nn.Linear):
            macs.append(m.in_features * m.out_features)
    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, 48, 160))
    for h in hs:
        h.remove()
    return sum(macs)
