"""One step of a 2-2-1 network worked by hand (scikit-learn's ``test_fit`` style).

The same numbers appear in docs/derivations/dense.md ("A worked example"). Network:
x = [1, 2] → Dense(2, 2) → sigmoid → Dense(2, 1) → ŷ, loss (ŷ − 1)², one SGD step with lr = 0.5.
"""
import numpy as np

from npae.pairs import functional as F
from npae.models.layers import Dense, Sequential, Sigmoid
from npae.training.optim import SGD


def test_one_step_of_a_2_2_1_network():
    net = Sequential([Dense(2, 2), Sigmoid(), Dense(2, 1)])
    W1, b1, W2, b2 = (net.params[k] for k in ("0.W", "0.b", "1.W", "1.b"))
    W1[...] = [[0.1, 0.2], [0.3, 0.4]]
    b1[...] = 0.0
    W2[...] = [[0.5], [0.6]]
    b2[...] = 0.0
    x, t = np.array([[1.0, 2.0]]), np.array([[1.0]])

    y = net.forward(x)
    # a = x W1 = [1*0.1 + 2*0.3, 1*0.2 + 2*0.4] = [0.7, 1.0]
    np.testing.assert_allclose(net.steps[0].pre, [[0.7, 1.0]], rtol=1e-15)
    # h = σ(a) = [0.668187772168166, 0.731058578630005]
    np.testing.assert_allclose(net.steps[0].apply(x), [[0.6681877721681662, 0.7310585786300049]], rtol=1e-15)
    # ŷ = 0.5 * 0.668187772 + 0.6 * 0.731058579 = 0.772729033262086
    np.testing.assert_allclose(y, [[0.772729033262086]], rtol=1e-15)
    loss, dy = F.mse_loss(y, t)
    assert abs(loss - 0.051652092321986025) < 1e-16       # (ŷ − 1)² = 0.2272709667² = 0.0516521
    np.testing.assert_allclose(dy, [[-0.45454193347582805]], rtol=1e-15)  # 2 (ŷ − 1)

    net.backward(dy)
    g = net.grads
    # dW2 = hᵀ dy = [0.668187772 * −0.454541933, 0.731058579 * −0.454541933]
    np.testing.assert_allclose(g["1.W"], [[-0.30371936188622434], [-0.3322967798145731]], rtol=1e-14)
    np.testing.assert_allclose(g["1.b"], [-0.45454193347582805], rtol=1e-15)
    # dh = dy W2ᵀ = [−0.227270967, −0.272725160]; da = dh ⊙ h (1 − h) = [−0.050388899, −0.053621021]
    np.testing.assert_allclose(g["0.b"], [-0.05038889905156553, -0.05362102096800214], rtol=1e-14)
    # dW1 = xᵀ da: row 1 is da, row 2 is 2 da
    np.testing.assert_allclose(g["0.W"], [[-0.05038889905156553, -0.05362102096800214],
                                          [-0.10077779810313106, -0.10724204193600428]], rtol=1e-14)

    SGD(lr=0.5).step(net.params, g)
    np.testing.assert_allclose(W1, [[0.12519444952578276, 0.22681051048400108],
                                    [0.3503888990515655, 0.45362102096800216]], rtol=1e-14)
    np.testing.assert_allclose(b1, [0.025194449525782765, 0.02681051048400107], rtol=1e-14)
    np.testing.assert_allclose(W2, [[0.6518596809431122], [0.7661483899072865]], rtol=1e-14)
    np.testing.assert_allclose(b2, [0.22727096673791403], rtol=1e-14)
