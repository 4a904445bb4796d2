import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { JsonValue } from "@bufbuild/protobuf";
import {
  AlreadyExistsError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../../lib/errors.js";
import type { AgentMode, AgentRecord, AgentSpec } from "./agent.js";
import { identityEnv } from "./cold.js";
import { labels } from "./contract.js";
import { isMailboxName, mailboxName, openMailbox, type ExecutorContext } from "./context.js";
import { containerName } from "./names.js";
import { decideOutcome, formatBytes, formatMs } from "./outcome.js";
import { capture } from "./output.js";
import type { RuntimeContainer, RuntimeProcess } from "./runtime/runtime.js";
import { StreamSession, type StreamTaskEnd } from "./stream-session.js";
import { atMost, withDeadline } from "./timing.js";
import type { AgentStateName, TaskOutcome, TaskRecord, TaskRef, TaskStatus } from "./task.js";

/** What happened to an agent, for events. */
export type AgentEventName = "created" | "ready" | "unhealthy" | "exited" | "destroyed";

export interface AgentListener {
  agentChanged(agent: AgentRecord, event: AgentEventName, reason: string): void;
}

/** A validated task for an agent. */
export interface WarmTask {
  ref: TaskRef;
  /** Exec agents only. */
  command: string[];
  env: Record<string, string>;
  /** Exec agents only. */
  workingDir: string;
  input: JsonValue;
  inputJson: string;
  timeoutMs: number;
}

export interface AgentFilter {
  poolId?: string;
  labels?: Readonly<Record<string, string>>;
  states?: readonly AgentStateName[];
}

/** How long a stream agent gets to answer a cancel before it is killed. */
const streamCancelGraceMs = 2000;
const stderrTailLines = 20;
/** How long a new exec agent must stay up to count as started. */
const execSettleMs = 150;

/**
 * Agents: long-running containers that take task after task. Creates them and waits until they
 * are READY, runs one task at a time on each (exec: `docker exec`; stream: the protocol), checks
 * and destroys them, and notices when their container dies. Decides no policy: the Pool says when.
 */
export class AgentManager {
  private readonly agents = new Map<string, AgentRecord>();

  constructor(
    private readonly ctx: ExecutorContext,
    private readonly listener: AgentListener,
  ) {}

  get(agentId: string): AgentRecord {
    const agent = this.agents.get(agentId);
    if (agent === undefined) {
      throw new NotFoundError(`no agent "${agentId}" on this Executor (unknown or destroyed)`, {
        field: "agent_id",
      });
    }
    return agent;
  }

  list(filter: AgentFilter): AgentRecord[] {
    const states = filter.states?.length ? new Set(filter.states) : undefined;
    const wanted = Object.entries(filter.labels ?? {});
    return [...this.agents.values()]
      .filter(
        (a) =>
          (!filter.poolId || a.poolId === filter.poolId) &&
          (states === undefined || states.has(a.state)) &&
          wanted.every(([k, v]) => a.spec.labels[k] === v),
      )
      .sort((a, b) => a.createMs - b.createMs || (a.agentId < b.agentId ? -1 : 1));
  }

  /** Creates an agent and resolves once it is READY (see CreateAgent in executor.proto). */
  async create(
    agentIdOrEmpty: string,
    poolId: string,
    spec: AgentSpec,
    startupTimeoutMs: number,
  ): Promise<AgentRecord> {
    const agentId = agentIdOrEmpty === "" ? `agent-${randomUUID()}` : agentIdOrEmpty;
    if (this.agents.has(agentId)) {
      throw new AlreadyExistsError(`agent_id "${agentId}" is in use; choose another`, {
        field: "agent_id",
      });
    }
    const image = await this.ctx.runtime.getImage(spec.image);
    if (
      spec.command.length === 0 &&
      spec.args.length === 0 &&
      image.entrypoint.length === 0 &&
      image.cmd.length === 0
    ) {
      throw new InvalidArgumentError(
        `image "${spec.image}" has neither ENTRYPOINT nor CMD: give spec.command (a process that stays up)`,
        { field: "spec.command" },
      );
    }
    const agent: AgentRecord = {
      agentId,
      poolId,
      spec,
      nodeId: this.ctx.nodeId,
      createMs: this.ctx.now(),
      state: "starting",
      container: undefined,
      readyMs: undefined,
      lastUsedMs: undefined,
      uses: 0,
      currentTaskId: "",
      error: "",
      exitCode: undefined,
      mailbox: undefined,
      mailboxDir: "",
      session: undefined,
      stderrTail: [],
    };
    this.agents.set(agentId, agent);
    try {
      await this.startAgent(agent, startupTimeoutMs);
      return agent;
    } catch (err) {
      this.agents.delete(agentId);
      await this.teardown(agent);
      throw err;
    }
  }

  private async startAgent(agent: AgentRecord, startupTimeoutMs: number): Promise<void> {
    const { spec } = agent;
    let mounts: Array<{ source: string; target: string }> = [];
    const boxName = mailboxName(agent.agentId);
    if (spec.mode === "exec") {
      const box = await openMailbox(this.ctx, "agents", boxName);
      agent.mailbox = box.mailbox;
      agent.mailboxDir = box.visibleDir;
      mounts = box.mounts;
    }
    const container = await this.ctx.runtime.createContainer({
      name: containerName("agentainer", agent.poolId || "agent", agent.agentId),
      image: spec.image,
      command: spec.command,
      args: spec.args,
      env: spec.env,
      workingDir: spec.workingDir,
      limits: spec.limits,
      network: spec.network,
      labels: {
        ...spec.labels,
        [labels.managed]: "true",
        [labels.kind]: "agent",
        [labels.nodeId]: this.ctx.nodeId,
        [labels.agentId]: agent.agentId,
        [labels.poolId]: agent.poolId,
        [labels.agentSpec]: JSON.stringify(spec),
        ...(spec.mode === "exec" ? { [labels.mailbox]: boxName } : {}),
      },
      mounts,
      openStdin: spec.mode === "stream",
    });
    agent.container = container;
    const io = await container.attach();
    io.stderr.on("data", (chunk: Buffer) => this.onStderr(agent, chunk));
    if (spec.mode === "exec") io.stdout.resume(); // an exec agent's main process output is unused
    if (spec.mode === "stream" && io.stdin !== undefined) {
      agent.session = new StreamSession(io.stdin, io.stdout, (why) => {
        if (agent.state === "ready") this.markUnhealthy(agent, why);
      });
    }
    await container.start();
    this.listener.agentChanged(agent, "created", "");
    void container.wait().then((exit) => this.onExit(agent, exit.exitCode, exit.oomKilled));

    if (agent.session !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          agent.session.ready(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () =>
                reject(
                  new DeadlineExceededError(
                    `agent "${agent.agentId}" did not announce itself ({"type":"ready"} on stdout) within ${formatMs(startupTimeoutMs)}${this.stderrHint(agent)}`,
                  ),
                ),
              startupTimeoutMs,
            );
          }),
        ]);
      } catch (err) {
        if (err instanceof DeadlineExceededError) throw err;
        // Its stdout ended or it broke the protocol: say how it exited if it did.
        const exit = await atMost(container.wait(), 1000);
        throw new FailedPreconditionError(
          `agent "${agent.agentId}" failed during start-up: ${
            exit ? `exited with code ${exit.exitCode}` : (err as Error).message
          }${this.stderrHint(agent)}`,
        );
      } finally {
        clearTimeout(timer);
      }
    } else {
      // A main process that exits at once (no long-lived command) shows within a moment.
      await atMost(container.wait(), execSettleMs);
      const { running, exit } = await container.inspect();
      if (!running) {
        throw new FailedPreconditionError(
          `agent "${agent.agentId}" exited during start-up with code ${exit?.exitCode ?? "?"}${this.stderrHint(agent)}: its main process must stay up (e.g. command ["sleep","infinity"])`,
        );
      }
    }
    if (agent.state !== "starting") {
      throw new FailedPreconditionError(
        `agent "${agent.agentId}" exited during start-up${this.stderrHint(agent)}`,
      );
    }
    agent.state = "ready";
    agent.readyMs = this.ctx.now();
    this.listener.agentChanged(agent, "ready", "");
  }

  /** Runs one task on a READY agent (see RunTaskOnAgent); resolves with the task. */
  async runTask(agentId: string, task: WarmTask): Promise<TaskRecord> {
    const agent = this.get(agentId);
    const mode: AgentMode = agent.spec.mode;
    if (mode === "stream" && (task.command.length > 0 || task.workingDir !== "")) {
      throw new InvalidArgumentError(
        `agent "${agentId}" is a stream agent: command and working_dir must be empty (its main process takes the task)`,
        { field: task.command.length > 0 ? "command" : "working_dir" },
      );
    }
    if (mode === "exec" && task.command.length === 0) {
      throw new InvalidArgumentError(`agent "${agentId}" is an exec agent: command is required`, {
        field: "command",
      });
    }
    const fingerprint = JSON.stringify([
      mode,
      agentId,
      task.ref.workflowId,
      task.ref.stepId,
      task.ref.index,
      task.ref.attempt,
    ]);
    if (agent.state !== "ready") {
      // A repeated call for a task this agent runs or ran is answered with that task.
      try {
        const t = this.ctx.tasks.get(task.ref.taskId);
        if (t.fingerprint === fingerprint) return t;
      } catch {
        // unknown task: fall through to the state error
      }
      throw new FailedPreconditionError(
        `agent "${agentId}" is ${agent.state.toUpperCase()}${agent.error ? ` (${agent.error})` : ""}; it takes tasks only when READY`,
        { field: "agent_id" },
      );
    }
    const { task: record, created } = this.ctx.tasks.create({
      ref: task.ref,
      mode,
      image: agent.spec.image,
      agentId,
      fingerprint,
    });
    if (!created) return record;
    if (this.ctx.runtime.isolated) record.containerId = agent.container?.id ?? "";
    record.containerName = agent.container?.name ?? "";
    agent.state = "busy";
    agent.currentTaskId = record.ref.taskId;
    void (mode === "exec"
      ? this.runExec(agent, record, task)
      : this.runStream(agent, record, task));
    return record;
  }

  private async runExec(agent: AgentRecord, record: TaskRecord, task: WarmTask): Promise<void> {
    const t0 = this.ctx.now();
    const container = agent.container as RuntimeContainer;
    const mailbox = agent.mailbox;
    let proc: RuntimeProcess | undefined;
    let cancelReason: string | undefined;
    let timedOut = false;
    let exit: { exitCode: number; oomKilled: boolean } | undefined;
    let runError: string | undefined;
    let tCreated = t0;
    let tStarted = t0;
    let tEnded = t0;
    record.cancel = async (reason, graceMs) => {
      cancelReason = reason;
      if (proc === undefined) return;
      if (graceMs > 0) {
        await proc.kill("SIGTERM");
        setTimeout(() => void proc?.kill("SIGKILL"), graceMs).unref();
      } else {
        await proc.kill("SIGKILL");
      }
    };
    try {
      await mailbox?.bind({ workflowId: task.ref.workflowId, inputJson: task.inputJson });
      const env = {
        ...task.env,
        ...identityEnv(task.ref),
        ...(mailbox?.env(agent.mailboxDir, {
          workflowId: task.ref.workflowId,
          inputJson: task.inputJson,
        }) ?? {}),
      };
      tCreated = this.ctx.now();
      if (cancelReason === undefined) {
        proc = await container.exec({ command: task.command, env, workingDir: task.workingDir });
        tStarted = this.ctx.now();
        this.ctx.tasks.started(record);
        // A cancel that came while the exec was being created had no process to stop.
        if (cancelReason !== undefined) void proc.kill("SIGKILL").catch(() => undefined);
        const output = capture(record.output, proc.io);
        exit = await withDeadline(proc.wait(), task.timeoutMs, () => {
          timedOut = true;
          void proc?.kill("SIGKILL");
        });
        tEnded = this.ctx.now();
        await atMost(output.ended, 2000);
      }
    } catch (err) {
      runError = `could not run the task on agent "${agent.agentId}": ${err instanceof Error ? err.message : String(err)}`;
      tEnded = this.ctx.now();
    }
    const mailboxOut = (await mailbox?.collect()) ?? {
      result: undefined,
      resultTooLarge: false,
      error: undefined,
    };
    // The container may have died under the task (OOM of the whole container, docker kill). A
    // command that exited 0 ran to its end in a live container: that case skips the engine call
    // (a health check or the next task notices a container that dies afterwards).
    const clean = exit?.exitCode === 0 && runError === undefined && !timedOut;
    const inspected = clean
      ? { running: true, exit: undefined }
      : await container.inspect().catch(() => ({ running: false, exit: undefined }));
    const decided = decideOutcome({
      exitCode: exit?.exitCode,
      oomKilled: (exit?.oomKilled ?? false) || (inspected.exit?.oomKilled ?? false),
      timedOut: timedOut && cancelReason === undefined,
      cancelReason,
      runError,
      mailbox: mailboxOut,
      stdout: record.output.tail("stdout").data,
      stderr: record.output.tail("stderr").data,
      memoryBytes: agent.spec.limits.memoryBytes,
      timeoutMs: task.timeoutMs,
    });
    if (!inspected.running && agent.state === "busy") {
      this.markExited(agent, inspected.exit?.exitCode, "its container stopped during a task");
    }
    this.endTask(agent, record, {
      ...decided,
      exitCode: exit?.exitCode,
      timings: {
        createMs: tCreated - t0,
        startMs: tStarted - tCreated,
        runMs: Math.max(0, tEnded - tStarted),
        totalMs: this.ctx.now() - t0,
      },
    });
  }

  private async runStream(agent: AgentRecord, record: TaskRecord, task: WarmTask): Promise<void> {
    const t0 = this.ctx.now();
    const session = agent.session as StreamSession;
    const taskId = record.ref.taskId;
    let cancelReason: string | undefined;
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const giveUp = (end: StreamTaskEnd) => {
      // The agent did not stop the task in time: it cannot be trusted with another.
      this.markExited(agent, undefined, "killed: it did not stop a task in time");
      void agent.container?.kill("SIGKILL");
      session.abandon(taskId, end);
    };
    record.cancel = (reason, graceMs) => {
      cancelReason = reason;
      session.cancel(taskId, reason);
      killTimer = setTimeout(
        () => giveUp({ kind: "error", error: "cancelled" }),
        Math.max(graceMs, 1),
      );
      killTimer.unref();
      return Promise.resolve();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      session.cancel(taskId, `timed out after ${formatMs(task.timeoutMs)}`);
      killTimer = setTimeout(
        () => giveUp({ kind: "error", error: "timed out" }),
        streamCancelGraceMs,
      );
      killTimer.unref();
    }, task.timeoutMs);
    timer.unref();

    const tCreated = this.ctx.now();
    const ended = session.run(
      {
        type: "task",
        task_id: taskId,
        workflow_id: task.ref.workflowId,
        step_id: task.ref.stepId,
        attempt: task.ref.attempt,
        index: task.ref.index,
        env: task.env,
        input: task.input,
      },
      {
        onLog: (message) => record.output.write("stderr", Buffer.from(message + "\n")),
        onState: (request) => this.ctx.state(task.ref.workflowId, request),
      },
    );
    const tStarted = this.ctx.now();
    this.ctx.tasks.started(record);
    const end = await ended;
    clearTimeout(timer);
    clearTimeout(killTimer);
    const tEnded = this.ctx.now();

    let status: TaskStatus;
    let error = "";
    let result: JsonValue | undefined;
    if (cancelReason !== undefined) {
      status = "cancelled";
      error = `cancelled${cancelReason ? `: ${cancelReason}` : ""}`;
    } else if (timedOut) {
      status = "timed_out";
      error = `timed out after ${formatMs(task.timeoutMs)}`;
    } else if (end.kind === "result") {
      status = "succeeded";
      result = end.result;
    } else if (end.kind === "error") {
      status = "failed";
      error = end.error || "the agent reported an error without text";
    } else if (end.kind === "broken") {
      status = "failed";
      error = end.reason;
      this.markUnhealthy(agent, end.reason);
    } else {
      const exit = await atMost(agent.container?.wait() ?? Promise.resolve(undefined), 2000);
      status = exit?.oomKilled ? "oom_killed" : "failed";
      error = exit?.oomKilled
        ? `killed for passing its memory limit of ${formatBytes(agent.spec.limits.memoryBytes)}`
        : `the agent exited during the task${exit ? ` with code ${exit.exitCode}` : ""}${this.stderrHint(agent)}`;
    }
    this.endTask(agent, record, {
      status,
      result,
      error,
      exitCode: undefined,
      timings: {
        createMs: tCreated - t0,
        startMs: tStarted - tCreated,
        runMs: tEnded - tStarted,
        totalMs: this.ctx.now() - t0,
      },
    });
  }

  private endTask(
    agent: AgentRecord,
    record: TaskRecord,
    outcome: Omit<TaskOutcome, "agentState">,
  ): void {
    agent.uses++;
    agent.lastUsedMs = this.ctx.now();
    agent.currentTaskId = "";
    if (agent.state === "busy") agent.state = "ready";
    this.ctx.tasks.finish(record, { ...outcome, agentState: agent.state });
  }

  /** Checks an agent (see CheckAgent); returns whether it is healthy and why not. */
  async check(
    agentId: string,
    command: string[],
    timeoutMs: number,
  ): Promise<{ healthy: boolean; detail: string; latencyMs: number; agent: AgentRecord }> {
    const agent = this.get(agentId);
    const t0 = this.ctx.now();
    const container = agent.container;
    let healthy = true;
    let detail = "";
    const alive = container ? await container.inspect() : { running: false, exit: undefined };
    if (!alive.running) {
      this.markExited(agent, alive.exit?.exitCode, "its container is not running");
      healthy = false;
      detail = `container exited${alive.exit ? ` with code ${alive.exit.exitCode}` : ""}`;
    } else if (agent.state === "busy" || agent.state === "starting") {
      // Liveness only: the task in flight is not disturbed.
    } else if (agent.session?.broken !== undefined) {
      healthy = false; // a stream agent that broke the protocol never recovers
      detail = agent.session.broken;
    } else if (command.length > 0) {
      const r = await this.probe(container as RuntimeContainer, command, timeoutMs);
      healthy = r.ok;
      detail = r.detail;
    } else if (agent.session !== undefined && !(await agent.session.ping(timeoutMs))) {
      healthy = false;
      detail = `no pong within ${formatMs(timeoutMs)}`;
    }
    if (agent.state === "ready" || agent.state === "unhealthy") {
      if (!healthy) this.markUnhealthy(agent, detail);
      else if (agent.state === "unhealthy" && agent.session?.broken === undefined) {
        agent.state = "ready";
        agent.error = "";
        agent.readyMs = this.ctx.now();
        this.listener.agentChanged(agent, "ready", "health check passed");
      }
    }
    return { healthy, detail, latencyMs: this.ctx.now() - t0, agent };
  }

  private async probe(
    container: RuntimeContainer,
    command: string[],
    timeoutMs: number,
  ): Promise<{ ok: boolean; detail: string }> {
    let proc: RuntimeProcess;
    try {
      proc = await container.exec({ command, env: {}, workingDir: "" });
    } catch (err) {
      return { ok: false, detail: `check could not run: ${(err as Error).message}` };
    }
    // Only the last 2 KiB of its output is kept: the check's command is the image's, and it
    // may print without end.
    let tail = Buffer.alloc(0);
    const keep = (c: Buffer) => {
      tail = Buffer.concat([tail, c]);
      if (tail.length > 2048) tail = Buffer.from(tail.subarray(tail.length - 2048));
    };
    proc.io.stdout.on("data", keep);
    proc.io.stderr.on("data", keep);
    const exit = await atMost(proc.wait(), timeoutMs);
    if (exit === undefined) {
      await proc.kill("SIGKILL");
      proc.io.stdout.destroy(); // a child of the check may hold them open
      proc.io.stderr.destroy();
      return { ok: false, detail: `check did not finish within ${formatMs(timeoutMs)}` };
    }
    if (exit.exitCode === 0) return { ok: true, detail: "" };
    const out = tail.toString("utf8").trim().slice(-500);
    return { ok: false, detail: `check exited with code ${exit.exitCode}${out ? `: ${out}` : ""}` };
  }

  /** Destroys an agent (see DestroyAgent); undefined when it did not exist. */
  async destroy(agentId: string, force: boolean, reason: string): Promise<AgentRecord | undefined> {
    const agent = this.agents.get(agentId);
    if (agent === undefined) return undefined;
    if (agent.state === "busy") {
      if (!force) {
        throw new FailedPreconditionError(
          `agent "${agentId}" is BUSY with task "${agent.currentTaskId}"; set force to destroy it anyway (the task ends CANCELLED)`,
          { field: "force" },
        );
      }
      const task = this.ctx.tasks.get(agent.currentTaskId);
      await task.cancel?.(`agent destroyed${reason ? `: ${reason}` : ""}`, 0);
    }
    this.agents.delete(agentId);
    agent.state = "destroyed";
    await this.teardown(agent);
    this.listener.agentChanged(agent, "destroyed", reason);
    return agent;
  }

  /**
   * After a restart: adopts this node's running exec agents (READY again, same id, pool and
   * spec), and removes what cannot be used: stream agents (their stdin closed with the old
   * process's attach, so they have exited or are about to), exited agents, and task containers
   * whose tasks died with the old process (kept ones are stopped and left for debugging).
   */
  async recover(): Promise<{ adopted: number; removed: number }> {
    const mine = await this.ctx.runtime.listContainers({
      [labels.managed]: "true",
      [labels.nodeId]: this.ctx.nodeId,
    });
    let adopted = 0;
    let removed = 0;
    for (const c of mine) {
      const agentId = c.labels[labels.agentId] ?? "";
      if (agentId !== "" && this.agents.has(agentId)) continue; // one of ours already
      const container = await this.ctx.runtime.openContainer(c.id).catch(() => undefined);
      if (container === undefined) continue;
      const kept = c.labels[labels.kept];
      if (c.labels[labels.kind] === "task" && (kept === "always" || kept === "on_failure")) {
        await container.kill("SIGKILL");
        await this.removeLeftMailbox(c.labels); // as when a kept task ends: the container stays
        continue;
      }
      const spec = parseSpec(c.labels[labels.agentSpec]);
      if (c.labels[labels.kind] === "agent" && c.running && spec?.mode === "exec" && agentId) {
        // Its mailbox directory: named on its label (agents before the label: by their id).
        const boxName = c.labels[labels.mailbox] ?? agentId;
        try {
          if (!isMailboxName(boxName)) throw new Error("bad mailbox label");
          await this.adopt(agentId, c.labels[labels.poolId] ?? "", spec, container, boxName);
          adopted++;
          continue;
        } catch (err) {
          // One agent that cannot be adopted (its mailbox tampered with, say) must not keep the
          // Executor from starting: it is removed like the rest.
          this.ctx.logger.warn({ err, agentId }, "could not adopt an agent: removing it");
        }
      }
      await container.remove().catch((err: unknown) => {
        this.ctx.logger.error({ err, container: c.id }, "could not remove a container");
      });
      await this.removeLeftMailbox(c.labels);
      removed++;
    }
    return { adopted, removed };
  }

  /**
   * Removes the mailbox directory of a previous run's container, named on its label (containers
   * made before cold tasks had the label keep theirs: nothing names it).
   */
  private async removeLeftMailbox(containerLabels: Record<string, string>): Promise<void> {
    const name = containerLabels[labels.mailbox];
    if (name === undefined || !isMailboxName(name)) return;
    const kind = containerLabels[labels.kind] === "task" ? "tasks" : "agents";
    const dir = join(this.ctx.workDir, kind, name);
    await rm(dir, { recursive: true, force: true }).catch((err: unknown) => {
      this.ctx.logger.warn({ err, dir }, "could not remove a mailbox a previous run left");
    });
  }

  private async adopt(
    agentId: string,
    poolId: string,
    spec: AgentSpec,
    container: RuntimeContainer,
    boxName: string,
  ): Promise<void> {
    const box = await openMailbox(this.ctx, "agents", boxName, true);
    const now = this.ctx.now();
    const agent: AgentRecord = {
      agentId,
      poolId,
      spec,
      nodeId: this.ctx.nodeId,
      createMs: now,
      state: "ready",
      container,
      readyMs: now,
      lastUsedMs: undefined,
      uses: 0,
      currentTaskId: "",
      error: "",
      exitCode: undefined,
      mailbox: box.mailbox,
      mailboxDir: box.visibleDir,
      session: undefined,
      stderrTail: [],
    };
    this.agents.set(agentId, agent);
    void container.wait().then(
      (exit) => this.onExit(agent, exit.exitCode, exit.oomKilled),
      () => undefined,
    );
    this.listener.agentChanged(agent, "ready", "adopted after an Executor restart");
  }

  /** Destroys every agent (shutdown). */
  async close(): Promise<void> {
    await Promise.all(
      [...this.agents.keys()].map((id) => this.destroy(id, true, "executor shutting down")),
    );
  }

  private async teardown(agent: AgentRecord): Promise<void> {
    agent.session?.close();
    await agent.container
      ?.remove()
      .catch((err: unknown) =>
        this.ctx.logger.error(
          { err, agentId: agent.agentId },
          "could not remove an agent container",
        ),
      );
    await agent.mailbox?.close().catch(() => undefined);
  }

  private onExit(agent: AgentRecord, exitCode: number, oomKilled: boolean): void {
    if (agent.state === "destroyed" || !this.agents.has(agent.agentId)) return;
    this.markExited(
      agent,
      exitCode,
      oomKilled ? "killed for passing its memory limit" : `container exited with code ${exitCode}`,
    );
  }

  private markExited(agent: AgentRecord, exitCode: number | undefined, why: string): void {
    if (agent.state === "exited" || agent.state === "destroyed") return;
    agent.state = "exited";
    agent.exitCode = exitCode;
    agent.error = why;
    this.listener.agentChanged(agent, "exited", why);
  }

  private markUnhealthy(agent: AgentRecord, why: string): void {
    if (agent.state === "exited" || agent.state === "destroyed") return;
    const was = agent.state;
    agent.state = "unhealthy";
    agent.error = why;
    if (was !== "unhealthy") this.listener.agentChanged(agent, "unhealthy", why);
  }

  private onStderr(agent: AgentRecord, chunk: Buffer): void {
    const lines = chunk
      .toString("utf8")
      .split("\n")
      .filter((l) => l.trim() !== "");
    agent.stderrTail.push(...lines);
    if (agent.stderrTail.length > stderrTailLines) {
      agent.stderrTail.splice(0, agent.stderrTail.length - stderrTailLines);
    }
    // A stream agent's stderr while it runs a task is that task's log.
    if (agent.session !== undefined && agent.currentTaskId !== "") {
      try {
        this.ctx.tasks.get(agent.currentTaskId).output.write("stderr", chunk);
      } catch {
        // the task was swept: nothing to attach the log to
      }
    }
  }

  private stderrHint(agent: AgentRecord): string {
    const tail = agent.stderrTail.slice(-3).join(" | ");
    return tail === "" ? "" : `; its last stderr: ${tail}`;
  }
}

/** An AgentSpec from its label; undefined when absent or unreadable. */
function parseSpec(label: string | undefined): AgentSpec | undefined {
  if (label === undefined) return undefined;
  try {
    const spec = JSON.parse(label) as AgentSpec;
    return spec.mode === "exec" || spec.mode === "stream" ? spec : undefined;
  } catch {
    return undefined;
  }
}
