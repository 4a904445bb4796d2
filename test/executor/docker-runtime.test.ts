// The Docker runtime (services/executor/runtime/docker.ts) against the real engine. Nothing is
// pulled: beforeAll builds a tiny busybox image FROM scratch. Every container carries a label
// unique to this run, and the last test checks that none is left behind.
import { execFile, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AlreadyExistsError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from "../../lib/errors.js";
import { connectDocker, type DockerRuntime } from "../../services/executor/runtime/docker.js";
import type {
  ContainerOptions,
  ExitInfo,
  RuntimeContainer,
} from "../../services/executor/runtime/runtime.js";

const image = "agentainer-test/busybox:local";
/** The same with ENTRYPOINT ["echo","entry"] and CMD ["from-cmd"], for the override rules. */
const entryImage = "agentainer-test/busybox-entry:local";
const busybox = "/usr/bin/busybox";
const runLabel = "agentainer.test_run";
const run = randomUUID();
const MiB = 1024 * 1024;

const execFileAsync = promisify(execFile);
const docker = (args: string[]) => execFileAsync("docker", args);

/** Builds the test images from the host's static busybox (Debian busybox-static). */
async function buildImages(): Promise<void> {
  if (!existsSync(busybox)) {
    throw new Error(`${busybox} is missing: apt-get install -y busybox-static`);
  }
  const dir = await mkdtemp(join(tmpdir(), "agentainer-busybox-"));
  try {
    await copyFile(busybox, join(dir, "busybox"));
    await writeFile(
      join(dir, "Dockerfile"),
      'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n',
    );
    await docker(["build", "-q", "-t", image, dir]);
    await writeFile(
      join(dir, "Dockerfile"),
      `FROM ${image}\nENTRYPOINT ["echo", "entry"]\nCMD ["from-cmd"]\n`,
    );
    await docker(["build", "-q", "-t", entryImage, dir]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The engine's view of a container's settings (the CLI: only docker.ts may import dockerode). */
function dockerInspect(id: string) {
  return (
    JSON.parse(execFileSync("docker", ["inspect", id]).toString()) as Array<{
      Config: { Labels: Record<string, string>; OpenStdin: boolean; StdinOnce: boolean };
      HostConfig: {
        CapDrop: string[] | null;
        SecurityOpt: string[] | null;
        NetworkMode: string;
        Memory: number;
        MemorySwap: number;
        NanoCpus: number;
        PidsLimit: number;
        Binds: string[] | null;
      };
    }>
  )[0]!;
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

describe("DockerRuntime on the real engine", () => {
  let runtime: DockerRuntime;

  beforeAll(async () => {
    const connected = await connectDocker();
    if (connected === undefined) {
      throw new Error("no Docker engine answers: run `bash scripts/setup.sh`");
    }
    runtime = connected;
    await buildImages();
  });

  afterAll(async () => {
    // Clean up after a failed test; "leaves no container behind" reports the leak.
    const left = (await runtime?.listContainers({ [runLabel]: run })) ?? [];
    await Promise.all(left.map((c) => docker(["rm", "-f", c.id]).catch(() => undefined)));
    await runtime?.close();
  });

  function options(overrides: Partial<ContainerOptions> = {}): ContainerOptions {
    return {
      name: `agentainer-test-${randomUUID().slice(0, 12)}`,
      image,
      command: [],
      args: [],
      env: {},
      workingDir: "",
      limits: { cpuMillis: 500, memoryBytes: 64 * MiB, pids: 64 },
      network: "none",
      mounts: [],
      openStdin: false,
      ...overrides,
      labels: { ...overrides.labels, [runLabel]: run },
    };
  }

  /** Creates a container for the test body and removes it afterwards, whatever happens. */
  async function withContainer<T>(
    overrides: Partial<ContainerOptions>,
    body: (container: RuntimeContainer) => Promise<T>,
  ): Promise<T> {
    const container = await runtime.createContainer(options(overrides));
    try {
      return await body(container);
    } finally {
      await container.remove();
    }
  }

  /** Runs a container to its end: its exit and its output, stream by stream. */
  function runToEnd(
    overrides: Partial<ContainerOptions>,
  ): Promise<{ exit: ExitInfo; stdout: string; stderr: string; id: string }> {
    return withContainer(overrides, async (container) => {
      const io = await container.attach();
      const out = Promise.all([text(io.stdout), text(io.stderr)]);
      await container.start();
      const exit = await container.wait();
      const [stdout, stderr] = await out;
      return { exit, stdout, stderr, id: container.id };
    });
  }

  /** A running container with `sleep` as main process, for exec. */
  function withSleeper<T>(
    overrides: Partial<ContainerOptions>,
    body: (container: RuntimeContainer) => Promise<T>,
  ): Promise<T> {
    return withContainer({ command: ["sleep", "300"], ...overrides }, async (container) => {
      await container.start();
      return body(container);
    });
  }

  it("runs a container, its stdout and stderr apart, and reports its exit code", async () => {
    const ok = await runToEnd({ command: ["sh", "-c", "echo out; echo err >&2; echo more"] });
    expect(ok.exit).toEqual({ exitCode: 0, oomKilled: false });
    expect(ok.stdout).toBe("out\nmore\n");
    expect(ok.stderr).toBe("err\n");

    const failed = await runToEnd({ command: ["sh", "-c", "echo bye >&2; exit 3"] });
    expect(failed.exit).toEqual({ exitCode: 3, oomKilled: false });
    expect(failed.stderr).toBe("bye\n");
  });

  it("carries large output intact through the multiplexed stream", async () => {
    // 1 MiB of stdout and some stderr interleaved: frames split across socket reads.
    const { stdout, stderr, exit } = await runToEnd({
      command: ["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' a; echo done >&2"],
    });
    expect(exit.exitCode).toBe(0);
    expect(stdout.length).toBe(MiB);
    expect(stdout).toMatch(/^a+$/);
    expect(stderr).toBe("done\n");
  });

  it("describes local images; Entrypoint and Cmd may be null", async () => {
    const plain = await runtime.getImage(image);
    expect(plain.id).toMatch(/^sha256:/);
    expect(plain).toMatchObject({ entrypoint: [], cmd: [], workingDir: "" });
    expect(plain.sizeBytes).toBeGreaterThan(100_000);
    expect(plain.createdMs).toBeGreaterThan(Date.parse("2020-01-01"));

    const entry = await runtime.getImage(entryImage);
    expect(entry).toMatchObject({ entrypoint: ["echo", "entry"], cmd: ["from-cmd"] });
  });

  it("applies command and args as ENTRYPOINT and CMD overrides", async () => {
    const out = async (command: string[], args: string[]) =>
      (await runToEnd({ image: entryImage, command, args })).stdout;
    expect(await out([], [])).toBe("entry from-cmd\n"); // the image's both
    expect(await out([], ["x", "y"])).toBe("entry x y\n"); // args replace CMD only
    expect(await out(["echo", "own"], [])).toBe("own\n"); // command drops the image's CMD too
    expect(await out(["echo"], ["a", "b"])).toBe("a b\n");
  });

  it("sets the environment and the working directory", async () => {
    const { stdout } = await runToEnd({
      command: ["sh", "-c", 'echo "$GREETING $EMPTY|$(pwd)"'],
      env: { GREETING: "hello world", EMPTY: "" },
      workingDir: "/work/dir",
    });
    expect(stdout).toBe("hello world |/work/dir\n");
  });

  it("hardens every container: no capabilities, no new privileges, limits, no swap", async () => {
    const limits = { cpuMillis: 250, memoryBytes: 32 * MiB, pids: 20 };
    const { stdout } = await runToEnd({
      command: ["sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"],
      limits,
    });
    expect(stdout).toMatch(/CapEff:\s+0+\n/);
    expect(stdout).toMatch(/CapBnd:\s+0+\n/);
    expect(stdout).toMatch(/NoNewPrivs:\s+1\n/);

    await withContainer(
      { limits, labels: { "example.org/role": "probe" }, command: ["true"] },
      (container) => {
        const c = dockerInspect(container.id);
        expect(c.HostConfig.CapDrop).toEqual(["ALL"]);
        expect(c.HostConfig.SecurityOpt).toEqual(["no-new-privileges"]);
        expect(c.HostConfig.NanoCpus).toBe(250_000_000);
        expect(c.HostConfig.Memory).toBe(32 * MiB);
        expect(c.HostConfig.MemorySwap).toBe(32 * MiB);
        expect(c.HostConfig.PidsLimit).toBe(20);
        expect(c.HostConfig.NetworkMode).toBe("none");
        expect(c.Config.Labels).toEqual({ "example.org/role": "probe", [runLabel]: run });
        expect(c.Config.OpenStdin).toBe(false);
        return Promise.resolve();
      },
    );
  });

  it("reports a container killed for passing its memory limit as oomKilled", async () => {
    await withContainer(
      // tail buffers its whole input while it finds no newline: it grows until killed.
      {
        command: ["tail", "/dev/zero"],
        limits: { cpuMillis: 1000, memoryBytes: 16 * MiB, pids: 16 },
      },
      async (container) => {
        await container.attach();
        await container.start();
        expect(await container.wait()).toEqual({ exitCode: 137, oomKilled: true });
        expect(await container.inspect()).toEqual({
          running: false,
          exit: { exitCode: 137, oomKilled: true },
        });
      },
    );
  });

  it("caps the number of processes", async () => {
    const { exit, stderr } = await runToEnd({
      command: ["sh", "-c", "for i in $(seq 1 20); do sleep 2 & done; wait"],
      limits: { cpuMillis: 500, memoryBytes: 64 * MiB, pids: 8 },
    });
    expect(stderr).toMatch(/can't fork/);
    expect(exit.exitCode).not.toBe(0);
  });

  it("gives network none only a loopback interface, bridge an eth0", async () => {
    const none = await runToEnd({ command: ["cat", "/proc/net/dev"], network: "none" });
    const interfaces = (out: string) =>
      out
        .split("\n")
        .slice(2)
        .map((line) => line.split(":")[0]!.trim())
        .filter((name) => name !== "");
    expect(interfaces(none.stdout)).toEqual(["lo"]);
    const bridge = await runToEnd({ command: ["cat", "/proc/net/dev"], network: "bridge" });
    expect(interfaces(bridge.stdout).sort()).toEqual(["eth0", "lo"]);
  });

  it("mounts a host directory read-write as a bind", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentainer-mount-"));
    try {
      await writeFile(join(dir, "in.txt"), "from host\n");
      await withContainer(
        {
          command: ["sh", "-c", "cat /box/in.txt > /box/out.txt; echo written >> /box/out.txt"],
          mounts: [{ source: dir, target: "/box" }],
        },
        async (container) => {
          expect(dockerInspect(container.id).HostConfig.Binds).toEqual([`${dir}:/box:rw`]);
          await container.start();
          expect((await container.wait()).exitCode).toBe(0);
        },
      );
      expect(await readFile(join(dir, "out.txt"), "utf8")).toBe("from host\nwritten\n");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses to mount the Docker socket or a directory holding it", async () => {
    for (const source of ["/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run", "/"]) {
      const attempt = runtime.createContainer(options({ mounts: [{ source, target: "/engine" }] }));
      await expect(attempt, source).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(attempt).rejects.toThrow(/Docker socket/);
    }
    await expect(
      runtime.createContainer(options({ mounts: [{ source: "relative/dir", target: "/x" }] })),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("writes to an open stdin and closes it when the stream ends", async () => {
    await withContainer(
      {
        command: ["sh", "-c", "while read l; do echo got:$l; done; echo eof >&2"],
        openStdin: true,
      },
      async (container) => {
        const c = dockerInspect(container.id);
        expect(c.Config.OpenStdin).toBe(true);
        expect(c.Config.StdinOnce).toBe(true);
        const io = await container.attach();
        expect(io.stdin).toBeDefined();
        await container.start();

        // A line at a time: each answer comes back before the next line is sent.
        const lines: string[] = [];
        let buffered = "";
        let notify: (() => void) | undefined;
        io.stdout.on("data", (chunk: Buffer) => {
          buffered += chunk.toString("utf8");
          const parts = buffered.split("\n");
          buffered = parts.pop()!;
          lines.push(...parts);
          notify?.();
        });
        const nextLine = (count: number) =>
          new Promise<void>((resolve) => {
            notify = () => {
              if (lines.length >= count) resolve();
            };
            notify();
          });
        io.stdin!.write("one\n");
        await nextLine(1);
        io.stdin!.write("two\nthree\n");
        await nextLine(3);
        expect(lines).toEqual(["got:one", "got:two", "got:three"]);

        const stderr = text(io.stderr);
        io.stdin!.end();
        expect(await container.wait()).toEqual({ exitCode: 0, oomKilled: false });
        expect(await stderr).toBe("eof\n");
      },
    );
  });

  it("has no stdin unless asked for", async () => {
    await withContainer({ command: ["true"] }, async (container) => {
      expect((await container.attach()).stdin).toBeUndefined();
    });
  });

  it("execs with env and working directory, stdout and stderr apart, and exit code", async () => {
    await withSleeper({ env: { FROM_CONTAINER: "c" } }, async (container) => {
      const proc = await container.exec({
        command: ["sh", "-c", 'echo "$FROM_CONTAINER $TASK $(pwd)"; echo oops >&2; exit 5'],
        env: { TASK: "t1" },
        workingDir: "/bin",
      });
      expect(proc.io.stdin).toBeUndefined();
      const [stdout, stderr] = await Promise.all([text(proc.io.stdout), text(proc.io.stderr)]);
      expect(await proc.wait()).toEqual({ exitCode: 5, oomKilled: false });
      expect(await proc.wait()).toEqual({ exitCode: 5, oomKilled: false }); // memoized
      expect(stdout).toBe("c t1 /bin\n");
      expect(stderr).toBe("oops\n");

      // Docker does not create an exec's working directory: the start fails like a shell's 126.
      const lost = await container.exec({ command: ["pwd"], env: {}, workingDir: "/nowhere" });
      const said = await Promise.all([text(lost.io.stdout), text(lost.io.stderr)]);
      expect(await lost.wait()).toEqual({ exitCode: 126, oomKilled: false });
      expect(said.join("")).toMatch(/chdir to cwd \("\/nowhere"\)/);

      const ok = await container.exec({ command: ["true"], env: {}, workingDir: "" });
      ok.io.stdout.resume();
      ok.io.stderr.resume();
      expect(await ok.wait()).toEqual({ exitCode: 0, oomKilled: false });
    });
  });

  it("kills an exec'd process alone, leaving the container running", async () => {
    await withSleeper({}, async (container) => {
      const proc = await container.exec({ command: ["sleep", "100"], env: {}, workingDir: "" });
      proc.io.stdout.resume();
      proc.io.stderr.resume();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = Date.now();
      await proc.kill();
      expect(await proc.wait()).toEqual({ exitCode: 137, oomKilled: false });
      expect(Date.now() - started).toBeLessThan(5000);
      await proc.kill(); // exited: no error
      expect((await container.inspect()).running).toBe(true);

      const term = await container.exec({ command: ["sleep", "100"], env: {}, workingDir: "" });
      term.io.stdout.resume();
      term.io.stderr.resume();
      await new Promise((resolve) => setTimeout(resolve, 200));
      await term.kill("SIGTERM");
      expect((await term.wait()).exitCode).toBe(143);
    });
  });

  it("reports an exec killed for memory as oomKilled, the container surviving", async () => {
    await withSleeper(
      { limits: { cpuMillis: 1000, memoryBytes: 16 * MiB, pids: 16 } },
      async (container) => {
        const proc = await container.exec({
          command: ["tail", "/dev/zero"],
          env: {},
          workingDir: "",
        });
        proc.io.stdout.resume();
        proc.io.stderr.resume();
        expect(await proc.wait()).toEqual({ exitCode: 137, oomKilled: true });
        expect((await container.inspect()).running).toBe(true);
      },
    );
  });

  it("refuses to exec in a container that does not run", async () => {
    await withContainer({ command: ["true"] }, async (container) => {
      await expect(container.exec({ command: ["true"], env: {}, workingDir: "" })).rejects.toThrow(
        /not running/,
      );
    });
  });

  it("waits any number of times, before and after the exit, and kills quietly", async () => {
    await withSleeper({}, async (container) => {
      const first = container.wait();
      expect(await container.inspect()).toEqual({ running: true, exit: undefined });
      await container.kill("SIGTERM"); // sleep as pid 1 has no handler: ignored
      await container.kill();
      const exit = await first;
      expect(exit).toEqual({ exitCode: 137, oomKilled: false });
      expect(await container.wait()).toEqual(exit);
      await container.kill(); // not running: no error
      expect(await container.inspect()).toEqual({ running: false, exit });
    });
  });

  it("removes idempotently, killing a running container", async () => {
    const container = await runtime.createContainer(options({ command: ["sleep", "300"] }));
    await container.start();
    const waiting = container.wait();
    await container.remove();
    expect((await waiting).exitCode).toBe(137);
    await container.remove();
    await container.kill();
    await expect(container.inspect()).rejects.toBeInstanceOf(NotFoundError);
  });

  it("names a missing image and says it is never pulled", async () => {
    const missing = `agentainer-test/missing-${randomUUID().slice(0, 8)}:local`;
    const create = runtime.createContainer(options({ image: missing }));
    await expect(create).rejects.toBeInstanceOf(NotFoundError);
    await expect(create).rejects.toThrow(missing);
    await expect(create).rejects.toThrow(/build it locally.*never pulled/);
    const get = runtime.getImage(missing);
    await expect(get).rejects.toBeInstanceOf(NotFoundError);
    await expect(get).rejects.toThrow(missing);
  });

  it("refuses a name in use with AlreadyExistsError", async () => {
    const first = options({ command: ["true"] });
    await withContainer(first, async () => {
      await expect(
        runtime.createContainer(options({ name: first.name, command: ["true"] })),
      ).rejects.toBeInstanceOf(AlreadyExistsError);
    });
  });

  it("lists containers by labels, running or not", async () => {
    const group = randomUUID();
    await withSleeper({ labels: { "agentainer.test_group": group } }, async (running) => {
      await withContainer(
        { command: ["true"], labels: { "agentainer.test_group": group, extra: "yes" } },
        async (created) => {
          const all = await runtime.listContainers({ "agentainer.test_group": group });
          expect(all.map((c) => c.id).sort()).toEqual([running.id, created.id].sort());
          const mine = all.find((c) => c.id === running.id)!;
          expect(mine).toEqual({
            id: running.id,
            name: running.name,
            labels: { "agentainer.test_group": group, [runLabel]: run },
            running: true,
          });
          expect(all.find((c) => c.id === created.id)!.running).toBe(false);
          const extra = await runtime.listContainers({
            "agentainer.test_group": group,
            extra: "yes",
          });
          expect(extra.map((c) => c.id)).toEqual([created.id]);
        },
      );
    });
  });

  it("finds no engine where none answers, and maps a vanished engine to UnavailableError", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentainer-sock-"));
    try {
      const started = Date.now();
      expect(await connectDocker({ socketPath: join(dir, "none.sock") })).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(2500);

      // A fake engine that answers the ping, then goes away.
      const socketPath = join(dir, "fake.sock");
      const server = createServer((_req, res) => res.end("OK"));
      await new Promise<void>((resolve) => server.listen(socketPath, resolve));
      const fake = await connectDocker({ socketPath });
      await new Promise((resolve) => server.close(resolve));
      expect(fake).toBeDefined();
      const attempt = fake!.createContainer(options());
      await expect(attempt).rejects.toBeInstanceOf(UnavailableError);
      await expect(attempt).rejects.toThrow(socketPath);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("leaves no container behind", async () => {
    expect(await runtime.listContainers({ [runLabel]: run })).toEqual([]);
  });
});
