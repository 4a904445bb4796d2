import { InvalidArgumentError } from "../../lib/errors.js";

/** The step ids and dependencies of a definition, as the graph checks need them. */
export interface StepLinks {
  id: string;
  dependsOn: readonly string[];
}

/** A checked DAG: steps in a topological order, and what each step can see. */
export interface StepGraph {
  /** Step ids so that every step comes after all of its dependencies (stable: array order). */
  readonly order: readonly string[];
  /** For each step, every step it (transitively) depends on. */
  readonly ancestors: ReadonlyMap<string, ReadonlySet<string>>;
  /** For each step, the steps that list it in depends_on. */
  readonly dependants: ReadonlyMap<string, readonly string[]>;
  /** Steps no other step depends on (the workflow's result comes from them). */
  readonly sinks: readonly string[];
}

const stepIdPattern = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;

/**
 * Checks ids and depends_on and builds the DAG. Every error is INVALID_ARGUMENT naming the
 * field path: a bad or duplicate id, an unknown or repeated dependency, a step depending on
 * itself, or a cycle, reported with its path (`steps[2].depends_on[0]: cycle a -> b -> c -> a`).
 */
export function buildGraph(steps: readonly StepLinks[]): StepGraph {
  const index = new Map<string, number>();
  steps.forEach((s, i) => {
    const field = `steps[${i}].id`;
    if (!stepIdPattern.test(s.id)) {
      throw new InvalidArgumentError(
        s.id === ""
          ? `${field} is required`
          : `${field} "${s.id.slice(0, 80)}" is invalid: 1 to 63 characters, a letter or _ first, then letters, digits, _ or -`,
        { field },
      );
    }
    const first = index.get(s.id);
    if (first !== undefined) {
      throw new InvalidArgumentError(`${field} "${s.id}" is already the id of steps[${first}]`, {
        field,
      });
    }
    index.set(s.id, i);
  });

  steps.forEach((s, i) => {
    const seen = new Set<string>();
    s.dependsOn.forEach((dep, j) => {
      const field = `steps[${i}].depends_on[${j}]`;
      if (dep === s.id) {
        throw new InvalidArgumentError(`${field}: step "${s.id}" cannot depend on itself`, {
          field,
        });
      }
      if (!index.has(dep)) {
        throw new InvalidArgumentError(`${field}: unknown step "${dep}"`, { field });
      }
      if (seen.has(dep)) {
        throw new InvalidArgumentError(`${field}: "${dep}" is listed twice`, { field });
      }
      seen.add(dep);
    });
  });

  // Depth-first search for a cycle, in array order so the report is stable.
  const state = new Map<string, "visiting" | "done">();
  const byId = new Map(steps.map((s) => [s.id, s]));
  const path: string[] = [];
  const visit = (id: string): void => {
    state.set(id, "visiting");
    path.push(id);
    const step = byId.get(id) as StepLinks;
    step.dependsOn.forEach((dep, j) => {
      const s = state.get(dep);
      if (s === "visiting") {
        // The path runs along depends_on ("a -> b": a depends on b); this edge closes it.
        const cycle = [...path.slice(path.indexOf(dep)), dep];
        const field = `steps[${index.get(id)}].depends_on[${j}]`;
        throw new InvalidArgumentError(`${field}: cycle ${cycle.join(" -> ")}`, { field });
      }
      if (s === undefined) visit(dep);
    });
    path.pop();
    state.set(id, "done");
  };
  for (const s of steps) if (!state.has(s.id)) visit(s.id);

  // Topological order (Kahn), ties broken by array position.
  const remaining = new Map(steps.map((s) => [s.id, s.dependsOn.length]));
  const dependants = new Map<string, string[]>(steps.map((s) => [s.id, []]));
  for (const s of steps) for (const dep of s.dependsOn) dependants.get(dep)?.push(s.id);
  const order: string[] = [];
  const ready = steps.filter((s) => s.dependsOn.length === 0).map((s) => s.id);
  while (ready.length > 0) {
    ready.sort((a, b) => (index.get(a) ?? 0) - (index.get(b) ?? 0));
    const id = ready.shift() as string;
    order.push(id);
    for (const d of dependants.get(id) ?? []) {
      const left = (remaining.get(d) ?? 0) - 1;
      remaining.set(d, left);
      if (left === 0) ready.push(d);
    }
  }

  const ancestors = new Map<string, Set<string>>();
  for (const id of order) {
    const mine = new Set<string>();
    for (const dep of byId.get(id)?.dependsOn ?? []) {
      mine.add(dep);
      for (const a of ancestors.get(dep) ?? []) mine.add(a);
    }
    ancestors.set(id, mine);
  }

  return {
    order,
    ancestors,
    dependants,
    sinks: steps.filter((s) => (dependants.get(s.id) ?? []).length === 0).map((s) => s.id),
  };
}
