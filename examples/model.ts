// examples/model.ts: a custom model, registered by name.
import { defineModel, tf } from "fedsim";

/**
 * A two-layer perceptron. Every layer is named: fedsim matches weights across processes by layer
 * name. Seeded initialisers make reruns start from the same weights.
 */
export const smallMlp = defineModel({
  name: "small-mlp",
  build({ inputShape, numClasses, seed }) {
    return tf.sequential({
      name: "small_mlp",
      layers: [
        tf.layers.dense({
          name: "hidden",
          inputShape,
          units: 16,
          activation: "relu",
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
        }),
        tf.layers.dense({
          name: "out",
          units: numClasses,
          activation: "softmax",
          kernelInitializer: tf.initializers.glorotUniform({
            seed: seed === undefined ? undefined : seed + 1,
          }),
        }),
      ],
    });
  },
});
