# syntax=docker/dockerfile:1
# Multi-stage: install production dependencies in one stage, run as a non-root user in the next.
# The project runs TypeScript through Node's built-in type stripping, so there is no build step.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    ATTACHMENT_TEMP_DIR=/tmp/gmail-sync-attachments
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
RUN mkdir -p /tmp/gmail-sync-attachments && chown node:node /tmp/gmail-sync-attachments && chmod 700 /tmp/gmail-sync-attachments
# The image's `node` user (uid 1000): nothing runs as root; compose mounts a tmpfs for the temp
# directory owned by the same uid.
USER node
EXPOSE 9464
ENTRYPOINT ["node", "bin/gmail-sync.js"]
CMD ["serve"]
