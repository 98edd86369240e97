# The llmscaler image: one static binary (worker and CLI) on a distroless base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/llmscaler ./cmd/llmscaler

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/llmscaler /usr/local/bin/llmscaler
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/llmscaler"]
CMD ["worker"]
