// Imported first by the `runctl local` fast path's bundle (see bundle-local.mjs).
import { z } from "zod";

z.config({ jitless: true });
