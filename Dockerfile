# syntax=docker/dockerfile:1
# Multi-stage. Two images from one file:
#   production (the default, last stage): what migrate and the workers run. Without the emulator's
#     mail generator (src/emulator/generate/), the demo (src/demo/) and the packages only they use
#     (pdf-lib, docx, nodemailer; jszip stays: mammoth needs it): less code for an attacker to use.
#   demo (`--target demo`): everything, for compose's emulator and traffic services.
# The project runs TypeScript through Node's built-in type stripping, so there is no build step.
# The base image is a tag; pin it by digest for production builds (README "Security").
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM deps AS production-deps
# The lockfile still decides every remaining version; this only drops the three and what they alone
# pulled in. (The emulator-only code moves into its own package later; then this step goes.)
RUN npm uninstall --omit=dev --no-audit --no-fund pdf-lib docx nodemailer && npm cache clean --force

FROM node:24-bookworm-slim AS base
ENV NODE_ENV=production \
    ATTACHMENT_TEMP_DIR=/tmp/gmail-sync-attachments
WORKDIR /app
RUN mkdir -p /tmp/gmail-sync-attachments && chown node:node /tmp/gmail-sync-attachments && chmod 700 /tmp/gmail-sync-attachments
EXPOSE 9464

FROM base AS production-src
COPY src ./src
RUN rm -rf src/emulator/generate src/demo

FROM base AS demo
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
# The image's `node` user (uid 1000): nothing runs as root.
USER node
ENTRYPOINT ["node", "bin/gmail-sync.js"]
CMD ["serve"]

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
