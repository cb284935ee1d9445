# syntax=docker/dockerfile:1
# Multi-stage. Two images from one file:
#   production (the default, last stage): what migrate and the workers run. Without the emulator
#     package (emulator/), the demo (src/demo/) and the packages only they use (pdf-lib, docx,
#     nodemailer, cli-progress): less code for an attacker to use.
#   demo (`--target demo`): everything, for compose's emulator and traffic services.
# The project runs TypeScript through Node's built-in type stripping, so there is no build step.
# The base image is a tag; pin it by digest for production builds (README "Security").
FROM node:24-bookworm-slim AS base
ENV NODE_ENV=production \
    ATTACHMENT_TEMP_DIR=/tmp/gmail-sync-attachments
WORKDIR /app
RUN mkdir -p /tmp/gmail-sync-attachments && chown node:node /tmp/gmail-sync-attachments && chmod 700 /tmp/gmail-sync-attachments
EXPOSE 9464

FROM base AS production-deps
COPY package.json package-lock.json ./
# The emulator is a workspace package that only tests, benches and the demo use, and npm installs a
# workspace's dependencies even with --omit=dev. So the manifest here names no workspace and no dev
# dependency, and `npm install` takes every remaining version from the lockfile.
RUN node -e 'const fs=require("fs");const p=JSON.parse(fs.readFileSync("package.json","utf8"));delete p.workspaces;delete p.devDependencies;fs.writeFileSync("package.json",JSON.stringify(p,null,2))' \
 && npm install --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM base AS demo-deps
COPY package.json package-lock.json ./
COPY emulator/package.json ./emulator/
RUN npm ci --include=dev --no-audit --no-fund && npm cache clean --force

FROM base AS demo
COPY --from=demo-deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY emulator ./emulator
COPY migrations ./migrations
# The image's `node` user (uid 1000): nothing runs as root.
USER node
ENTRYPOINT ["node", "bin/gmail-sync.js"]
CMD ["serve"]

FROM base AS production-src
COPY src ./src
RUN rm -rf src/demo

FROM base AS production
COPY --from=production-deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY --from=production-src /app/src ./src
COPY migrations ./migrations
# The image's `node` user (uid 1000): nothing runs as root; compose mounts a tmpfs for the temp
# directory owned by the same uid.
USER node
ENTRYPOINT ["node", "bin/gmail-sync.js"]
CMD ["serve"]
