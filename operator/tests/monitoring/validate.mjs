// Validates prometheus-operator objects (JSON files given as arguments)
// against the schemas of the prometheus-operator CRDs, as compiled by
// @kubernetes-models/prometheus-operator. Prints one line per file; exits
// non-zero if any is invalid.
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const kinds = { ServiceMonitor, PodMonitor, PrometheusRule };
let failed = 0;
for (const file of process.argv.slice(2)) {
  const obj = JSON.parse(readFileSync(file, "utf8"));
  const Kind = kinds[obj.kind];
  try {
    if (!Kind) throw new Error(`unsupported kind ${obj.kind}`);
    if (obj.apiVersion !== "monitoring.coreos.com/v1") {
      throw new Error(`apiVersion: expected monitoring.coreos.com/v1, got ${obj.apiVersion}`);
    }
    new Kind(obj).validate();
    console.log(`${file}: valid ${obj.kind}`);
  } catch (e) {
    failed++;
    console.log(`${file}: INVALID ${obj.kind}: ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
