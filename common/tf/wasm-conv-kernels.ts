/**
 * Conv2D gradients for the wasm backend, built from its fast (XNNPACK) forward Conv2D.
 *
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter at all (CNN training throws), and its
 * Conv2DBackpropInput is a plain loop. Both gradients are convolutions themselves, so they are rewritten as
 * transposes around one forward Conv2D (identities checked against the cpu kernels, see MEASURED.md).
 * NHWC only: the wasm Conv2D itself supports nothing else.
 */
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import {
  type BufferOwner,
  callWasmKernel,
  kernelArgs,
  release,
  requireInput,
  tagAsFedsimKernel,
  transposeInfo,
} from "./wasm-kernel-calls.js";

type Shape4 = [number, number, number, number];

function conv2dInfo(
  inShape: number[],
  filterShape: number[],
  attrs: tf.Conv2DBackpropFilterAttrs | tf.Conv2DBackpropInputAttrs,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape as Shape4,
    filterShape as Shape4,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    "channelsLast",
  );
}

/** Stride-1 forward conv with explicit padding (and dilation) on the wasm backend. */
function explicitConv2d(
  backend: BufferOwner,
  x: tf.TensorInfo,
  filter: tf.TensorInfo,
  pads: { top: number; bottom: number; left: number; right: number },
  dilations: [number, number],
): tf.TensorInfo {
  const pad: tf.backend_util.ExplicitPadding = [
    [0, 0],
    [pads.top, pads.bottom],
    [pads.left, pads.right],
    [0, 0],
  ];
  return callWasmKernel(
    tf.Conv2D,
    backend,
    { x, filter },
    { strides: [1, 1], pad, dataFormat: "NHWC", dilations },
  );
}

/**
 * dW[i,j,c,o] = Σ_{n,p,q} x[n, p·s + i - top, q·s + j - left, c] · dy[n,p,q,o].
 * With x as [C,H,W,N] and dy as a [Ho,Wo,N,O] filter this is a stride-1 conv with dilation s whose
 * batch axis is x's channels and whose contraction runs over the real batch; its output is [C,fh,fw,O].
 */
function conv2DBackpropFilterViaConv2D(params: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { inputs, backend, attrs } = kernelArgs(params);
  const x = requireInput(inputs, "x", tf.Conv2DBackpropFilter);
  const dy = requireInput(inputs, "dy", tf.Conv2DBackpropFilter);
  const filterAttrs = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (filterAttrs.dataFormat === "NCHW") {
    throw new FedsimError(
      ErrorCode.INCOMPATIBLE_OPTIONS,
      "Conv2DBackpropFilter on the wasm backend supports dataFormat 'NHWC' (channels last) only, got 'NCHW'",
    );
  }
  const info = conv2dInfo(x.shape, filterAttrs.filterShape, filterAttrs);
  // Rows/columns the filter-sized conv needs after x; negative when the last rows of x reach no output (valid
  // padding with a stride that does not divide evenly), and those rows are cropped instead.
  const bottom =
    info.filterHeight + (info.outHeight - 1) * info.strideHeight - info.inHeight - info.padInfo.top;
  const right = info.filterWidth + (info.outWidth - 1) * info.strideWidth - info.inWidth - info.padInfo.left;

  const owned: tf.TensorInfo[] = [];
  try {
    let xT = transposeInfo(backend, x, [3, 1, 2, 0]);
    owned.push(xT);
    if (bottom < 0 || right < 0) {
      const [channels, height, width, batch] = xT.shape;
      xT = callWasmKernel(
        tf.Slice,
        backend,
        { x: xT },
        {
          begin: [0, 0, 0, 0],
          size: [channels, height + Math.min(0, bottom), width + Math.min(0, right), batch],
        },
      );
      owned.push(xT);
    }
    const dyT = transposeInfo(backend, dy, [1, 2, 0, 3]);
    owned.push(dyT);
    const pads = {
      top: info.padInfo.top,
      bottom: Math.max(0, bottom),
      left: info.padInfo.left,
      right: Math.max(0, right),
    };
    const gradCfirst = explicitConv2d(backend, xT, dyT, pads, [info.strideHeight, info.strideWidth]);
    owned.push(gradCfirst);
    return transposeInfo(backend, gradCfirst, [1, 2, 0, 3]);
  } finally {
    release(backend, owned);
  }
}

/**
 * Input gradient for stride 1: dx = conv2d(dy, W rotated 180° with in/out channels swapped), padded by
 * (filter size - 1 - forward pad) on each side. Other strides keep the stock kernel.
 */
function makeConv2DBackpropInput(stock: tf.KernelFunc): tf.KernelFunc {
  return (params) => {
    const { inputs, backend, attrs } = kernelArgs(params);
    const dy = requireInput(inputs, "dy", tf.Conv2DBackpropInput);
    const filter = requireInput(inputs, "filter", tf.Conv2DBackpropInput);
    const inputAttrs = attrs as unknown as tf.Conv2DBackpropInputAttrs;
    if (inputAttrs.dataFormat === "NCHW" || dy.dtype !== "float32" || filter.dtype !== "float32") {
      return stock(params);
    }
    const info = conv2dInfo(inputAttrs.inputShape, filter.shape, inputAttrs);
    const pads = {
      top: info.filterHeight - 1 - info.padInfo.top,
      bottom: info.filterHeight - 1 - info.padInfo.bottom,
      left: info.filterWidth - 1 - info.padInfo.left,
      right: info.filterWidth - 1 - info.padInfo.right,
    };
    const fitsIdentity =
      info.strideHeight === 1 &&
      info.strideWidth === 1 &&
      Math.min(pads.top, pads.bottom, pads.left, pads.right) >= 0 &&
      info.outHeight + pads.top + pads.bottom - info.filterHeight + 1 === info.inHeight &&
      info.outWidth + pads.left + pads.right - info.filterWidth + 1 === info.inWidth;
    if (!fitsIdentity) return stock(params);

    const owned: tf.TensorInfo[] = [];
    try {
      const rotated = callWasmKernel(tf.Reverse, backend, { x: filter }, { dims: [0, 1] });
      owned.push(rotated);
      const swapped = transposeInfo(backend, rotated, [0, 1, 3, 2]);
      owned.push(swapped);
      return explicitConv2d(backend, dy, swapped, pads, [1, 1]);
    } finally {
      release(backend, owned);
    }
  };
}

export function conv2DBackpropFilterKernel(): tf.KernelFunc {
  return tagAsFedsimKernel(conv2DBackpropFilterViaConv2D as tf.KernelFunc);
}

export function conv2DBackpropInputKernel(stock: tf.KernelFunc): tf.KernelFunc {
  return tagAsFedsimKernel(makeConv2DBackpropInput(stock));
}
