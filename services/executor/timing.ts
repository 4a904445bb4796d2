/** The value of `p` if it settles within `ms`, else undefined. */
export async function atMost<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Awaits `work`, calling `onDeadline` (which kills what `work` waits for) if it has not settled
 * within `ms`. The work still decides how the wait ends.
 */
export async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  onDeadline: () => void,
): Promise<T> {
  const timer = setTimeout(onDeadline, ms);
  timer.unref();
  try {
    return await work;
  } finally {
    clearTimeout(timer);
  }
}
